"""The engine's two failures: a source that cannot be laid out, a stream that breaks.

Both carry messages meant for the person who asked for the ISO: paths relative to the
source, never absolute ones (docs/design.md, "The engine").
"""


class SourceError(Exception):
    """The source tree cannot be laid out (missing dir, unreadable file, ...).

    Raised before any byte is produced. ``str()`` is a human reason that names paths
    relative to the source directory only (no absolute paths, no secrets).
    """


class StreamError(Exception):
    """A source file changed (shrank, vanished, became unreadable) while streaming.

    Raised from the iterator; everything yielded before it was correct, so the stream
    simply ends short of the image's ``size`` and the client can tell it is incomplete.
    """
