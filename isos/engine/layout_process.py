"""Laying a source out in a child process, so pycdlib's objects never stay in the worker.

Run as ``python -m isos.engine.layout_process`` with a JSON request on stdin; answers a
pickle on stdout, ``("ok", template)`` or ``("error", exception)`` (docs/design.md, "Why a
child process lays out").
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Sequence

from isos.engine.errors import SourceError
from isos.engine.template import LayoutTemplate, make_layout_template


def make_layout_template_in_child(
    source_dir: str, extra_names: Sequence[str], *, volume_id: str
) -> LayoutTemplate:
    """``make_layout_template()`` in a fresh interpreter; raises SourceError likewise."""
    request = json.dumps({"source": source_dir, "names": list(extra_names), "volume_id": volume_id})
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
    try:
        answer: tuple[str, object] = (
            "ok",
            make_layout_template(request["source"], request["names"], volume_id=request["volume_id"]),
        )
    except SourceError as error:
        answer = ("error", error)
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
