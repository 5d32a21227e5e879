"""The ISO engine: a source tree or vendor ISO plus a host's files in, a stream of ISO bytes out.

No Django here (docs/design.md, "The engine"); the app around it passes settings in. The
names below are the engine's API. The layout cache (:mod:`isos.engine.layout_cache`), its
child process (:mod:`isos.engine.layout_process`) and the generate hook
(:mod:`isos.engine.hook`) are imported from their own modules: the child process is run
as ``python -m isos.engine.layout_process``, so this package must not import it.
"""

from isos.engine.build import BOOT_FILE, build_iso, describe_boot
from isos.engine.errors import SourceError, StreamError
from isos.engine.stream import IsoImage, IsoStream
from isos.engine.template import TEMPLATE_EXTRA_MAX, LayoutTemplate, make_layout_template
from isos.engine.vendor import is_vendor_iso

__all__ = [
    "BOOT_FILE",
    "TEMPLATE_EXTRA_MAX",
    "IsoImage",
    "IsoStream",
    "LayoutTemplate",
    "SourceError",
    "StreamError",
    "build_iso",
    "describe_boot",
    "is_vendor_iso",
    "make_layout_template",
]
