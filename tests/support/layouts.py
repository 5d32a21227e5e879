"""Comparing layout templates (the engine's plan of an ISO) of one tree made at different times."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from isos.engine import LayoutTemplate


def assert_same_layout_shape(here: LayoutTemplate, there: LayoutTemplate) -> None:
    """Two layouts of one tree made at different times: all but the dates (and what is
    derived from them) agree: sizes, where the request's files and their lengths go, the
    boot description, every extent, and where the output is patched."""
    assert (there.size, there.extra_offsets, there.length_fields, there.boot_description) == (
        here.size,
        here.extra_offsets,
        here.length_fields,
        here.boot_description,
    )
    assert [(p.offset, p.end) for p in there.plan] == [(p.offset, p.end) for p in here.plan]
    assert [offset for offset, _ in there.patches] == [offset for offset, _ in here.patches]
