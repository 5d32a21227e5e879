"""ISO 9660, Joliet and Rock Ridge names for the entry tree, unique within each directory.

Rock Ridge keeps the real name; ISO 9660 (interchange level 3) and Joliet get the
closest name their rules allow, with a numbered suffix on a clash. The vendor ISO
layout names its new entries by the same rules. Pure functions of the names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Final

from isos.engine.tree import Entry

# ECMA-119 7.5.2 / 7.6.3: a file's name plus extension may hold 30 d-characters, a
# directory identifier 31 (interchange levels 2 and 3).
_ISO_FILE_CHARS: Final = 30
_ISO_DIR_CHARS: Final = 31
# Long extensions are cut to this when the whole name does not fit.
_ISO_LONG_EXT_CHARS: Final = 8
# Joliet allows 64 UCS-2 characters; pycdlib also checks the UTF-8 length against 64.
_JOLIET_CHARS: Final = 64
_JOLIET_EXT_CHARS: Final = 16
# Joliet forbids * / : ; ? \ and control characters; UCS-2 cannot hold characters
# outside the BMP, nor the surrogate escapes of undecodable bytes.
_NOT_JOLIET_CHARACTER: Final = re.compile(r"[*/:;?\\\x00-\x1f\ud800-\udfff\U00010000-\U0010ffff]")
_NOT_D_CHARACTER: Final = re.compile("[^A-Z0-9_]")
# Rock Ridge relocation directory (pycdlib moves directories at depth 8, 16, ...).
# The leading dot hides it from `ls`, as genisoimage's -hide-rr-moved does.
RELOCATION_ISO_NAME: Final = "RR_MOVED"
RELOCATION_RR_NAME: Final = ".rr_moved"
RELOCATION_DEPTH: Final = 8
# Its key among the root's children: no real file name can hold a NUL.
RELOCATION_KEY: Final = "\x00relocation"


def printable(rel: str) -> str:
    """A relative path safe to show (undecodable bytes become U+FFFD)."""
    return valid_utf8(rel)


def valid_utf8(text: str) -> str:
    # os.scandir() gives undecodable bytes as surrogate escapes, which cannot be encoded
    # to UTF-8 (pycdlib encodes every name that way): replace them visibly.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def volume_label(volume_id: str) -> str:
    # d-characters only; 16 characters because the Joliet descriptor stores the same
    # label in UCS-2 within 32 bytes.
    return _d_characters(volume_id)[:16] or "CDROM"


def _d_characters(text: str) -> str:
    """Uppercase d-characters (A-Z 0-9 _); accents fold to their base letter."""
    if text.isascii():  # the common case, and a hot path for trees of 10,000 files
        return _NOT_D_CHARACTER.sub("_", text.upper())
    out: list[str] = []
    for ch in text:
        if ch.isascii():
            out.append(ch.upper() if ch.isalnum() or ch == "_" else "_")
        else:
            folded = "".join(c for c in unicodedata.normalize("NFKD", ch) if c.isascii() and c.isalnum())
            out.append(folded.upper() or "_")
    return "".join(out)


def _split_extension(name: str) -> tuple[str, str]:
    """Split at the last dot; a leading dot (".treeinfo") is not an extension."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


def iso_file_identifier(name: str, suffix: str) -> str:
    stem, ext = _split_extension(name)
    base, extension = _d_characters(stem), _d_characters(ext)
    if len(base) + len(extension) + len(suffix) > _ISO_FILE_CHARS:
        extension = extension[:_ISO_LONG_EXT_CHARS]
    # Always keep at least one character of the name itself.
    extension = extension[: _ISO_FILE_CHARS - len(suffix) - 1]
    base = base[: _ISO_FILE_CHARS - len(extension) - len(suffix)] + suffix
    return f"{base}.{extension};1"


def iso_dir_identifier(name: str, suffix: str) -> str:
    return _d_characters(name)[: _ISO_DIR_CHARS - len(suffix)] + suffix


def iso_key(identifier: str) -> str:
    # "FOO.;1" (file) and "FOO" (directory) look the same to readers without Rock
    # Ridge, so they share one namespace.
    return identifier.removesuffix(";1").removesuffix(".")


def _joliet_fits(text: str) -> bool:
    return len(text) <= _JOLIET_CHARS and len(text.encode("utf-8")) <= _JOLIET_CHARS


def joliet_identifier(name: str, suffix: str, *, is_dir: bool) -> str:
    safe = _NOT_JOLIET_CHARACTER.sub("_", name)
    stem, ext = (safe, "") if is_dir else _split_extension(safe)
    if not ext or len(ext) > _JOLIET_EXT_CHARS:
        stem, ext = safe, ""
    tail = f"{suffix}.{ext}" if ext else suffix
    if _joliet_fits(stem + tail):
        return stem + tail
    # Cut the stem, keeping the extension (and the de-duplication suffix) readable.
    while stem and not _joliet_fits(stem + tail):
        stem = stem[:-1]
    return stem + tail if stem else (safe[: _JOLIET_CHARS // 4] + suffix)


def _unique_names(
    entries: Sequence[Entry],
    make: Callable[[Entry, str], str],
    key: Callable[[str], str],
    suffix: Callable[[int], str],
) -> list[str]:
    """Name every entry; on a clash, later entries get the smallest free suffix.

    Every entry's unsuffixed name is reserved up front, so a suffixed name never takes
    the plain name of another entry (e.g. "a~1" versus a second "A"), whatever the order.
    """
    plain = [make(entry, "") for entry in entries]
    reserved = {key(name) for name in plain}
    claimed: set[str] = set()
    names: list[str] = []
    for entry, name in zip(entries, plain, strict=True):
        if key(name) in claimed:
            number = 1
            while True:
                name = make(entry, suffix(number))
                if key(name) not in reserved and key(name) not in claimed:
                    break
                number += 1
        claimed.add(key(name))
        names.append(name)
    return names


def _naming_order(directory: Entry) -> list[Entry]:
    # The boot catalog names itself first (it is expected at ISOLINUX/BOOT.CAT); the
    # relocation directory last, so real entries keep their natural names.
    rank = {"catalog": 0, "relocation": 2}
    return sorted(directory.children.values(), key=lambda e: (rank.get(e.kind, 1), e.name))


def assign_names(top: Entry) -> None:
    """Set every entry's ISO 9660, Joliet and Rock Ridge name, directory by directory."""
    pending = [top]
    while pending:
        directory = pending.pop()
        ordered = _naming_order(directory)
        iso_names = _unique_names(
            ordered,
            lambda e, s: (
                iso_dir_identifier(e.name, s)
                if e.kind == "dir"
                else iso_dir_identifier(RELOCATION_ISO_NAME, s)
                if e.kind == "relocation"
                else iso_file_identifier(e.name, s)
            ),
            iso_key,
            lambda n: f"_{n}",  # "~" is not a d-character (pycdlib rejects it)
        )
        # Joliet readers (Windows) compare names without regard to case.
        in_joliet = [e for e in ordered if e.kind not in ("symlink", "relocation")]
        joliet_names = _unique_names(
            in_joliet,
            lambda e, s: joliet_identifier(e.name, s, is_dir=e.kind == "dir"),
            str.casefold,
            lambda n: f"~{n}",
        )
        # Real names are unique already; only undecodable ones can clash once replaced.
        rr_names = _unique_names(
            ordered,
            lambda e, s: valid_utf8(e.name) + s,
            lambda name: name,
            lambda n: f"~{n}",
        )
        for entry, iso_name, rr_name in zip(ordered, iso_names, rr_names, strict=True):
            entry.iso_name, entry.rr_name = iso_name, rr_name
        for entry, joliet_name in zip(in_joliet, joliet_names, strict=True):
            entry.joliet_name = joliet_name
        pending.extend(e for e in ordered if e.kind == "dir")
