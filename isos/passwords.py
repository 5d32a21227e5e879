"""The root password as a crypt(3) hash for kickstart's ``rootpw --iscrypted``.

SHA-512 crypt (``$6$``) by default, MD5 crypt (``$1$``, what Traffic Ops writes) for very
old installers. The salt comes from ``secrets`` (the OS's CSPRNG). libpass (the kept
fork of passlib) does the hashing, since Python 3.13 dropped the ``crypt`` module.
"""

from __future__ import annotations

import secrets

from passlib.hash import md5_crypt, sha512_crypt

CRYPT_SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SCHEMES = {"sha512": 16, "md5": 8}  # scheme → salt length (the most each allows)
# glibc's default: a hash without an explicit "rounds=" field, which every installer reads.
SHA512_ROUNDS = 5000


def crypt_salt(length: int) -> str:
    return "".join(secrets.choice(CRYPT_SALT_ALPHABET) for _ in range(length))


def hash_root_password(password: str, scheme: str = "sha512") -> str:
    """The crypt string of ``password``; ``scheme`` is "sha512" or "md5"."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown root password hash scheme {scheme!r}; use sha512 or md5")
    salt = crypt_salt(SCHEMES[scheme])
    if scheme == "md5":
        return str(md5_crypt.using(salt=salt).hash(password))
    return str(sha512_crypt.using(salt=salt, rounds=SHA512_ROUNDS).hash(password))
