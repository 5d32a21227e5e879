"""Laying a source out in a child process, so pycdlib's objects never stay in the worker.

Run as ``python -m isos.engine.layout_process`` with a JSON request on stdin; answers a
pickle on stdout, ``("ok", template)`` or ``("error", exception)`` (docs/design.md, "Why a
child process lays out"). The child's clock stands still at the layout's time, so one
source laid out again at that time gives the same bytes (docs/design.md, "Byte-identical
for life").
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Sequence

from isos.engine.errors import SourceError
from isos.engine.template import LayoutTemplate, make_layout_template


def make_layout_template_in_child(
    source_dir: str, extra_names: Sequence[str], *, volume_id: str, layout_time: int | None = None
) -> LayoutTemplate:
    """``make_layout_template()`` in a fresh interpreter, every timestamp ``layout_time``
    (Unix seconds; default now); raises SourceError likewise."""
    layout_time = int(time.time()) if layout_time is None else layout_time
    request = json.dumps(
        {"source": source_dir, "names": list(extra_names), "volume_id": volume_id, "time": layout_time}
    )
    # The checkout holding isos/ (this file is isos/engine/layout_process.py).
    project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.run(
        [sys.executable, "-m", "isos.engine.layout_process"],
        input=request.encode(),
        capture_output=True,
        cwd=project,
        check=False,
    )
    if child.returncode != 0 or not child.stdout:
        raise RuntimeError(f"layout process failed: {child.stderr.decode(errors='replace')[-2000:]}")
    status, value = pickle.loads(child.stdout)  # noqa: S301 - our own child's answer
    if status == "error":
        raise value
    assert isinstance(value, LayoutTemplate)
    return value


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    frozen = int(request["time"])
    # pycdlib stamps every date it writes with time.time(): this process only lays out.
    time.time = lambda: float(frozen)
    try:
        template = make_layout_template(request["source"], request["names"], volume_id=request["volume_id"])
        answer: tuple[str, object] = ("ok", dataclasses.replace(template, layout_time=frozen))
    except SourceError as error:
        answer = ("error", error)
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
