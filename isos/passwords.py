"""The root password as a crypt(3) hash for kickstart's ``rootpw --iscrypted``.

SHA-512 crypt (``$6$``) by default, MD5 crypt (``$1$``, what Traffic Ops writes) for very
old installers. libpass (the kept fork of passlib) hashes, with a salt of the longest
length each scheme allows from its own CSPRNG, since Python 3.13 dropped ``crypt``.
"""

from __future__ import annotations

from passlib.hash import md5_crypt, sha512_crypt

HASH_SCHEMES = ("sha512", "md5")
# glibc's default: a hash without an explicit "rounds=" field, which every installer reads.
SHA512_ROUNDS = 5000


def hash_root_password(password: str, scheme: str = "sha512") -> str:
    """The crypt string of ``password``; ``scheme`` is one of :data:`HASH_SCHEMES`."""
    if scheme == "md5":
        return str(md5_crypt.hash(password))
    if scheme == "sha512":
        return str(sha512_crypt.using(rounds=SHA512_ROUNDS).hash(password))
    raise ValueError(f"unknown root password hash scheme {scheme!r}; use sha512 or md5")
