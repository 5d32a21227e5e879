"""The README and docs/ keep their promises: the Python snippet runs, no link is dead.

- The README's first ``python`` block (the ``apache-trafficcontrol`` client's first ISO) is
  run as written, in a process of its own, against the portal under gunicorn on loopback;
  only the host, the port and the credentials are swapped for the test server's. The ISO
  it saves is read back with pycdlib.
- Every relative link in README.md and docs/*.md leads to a file of the repository, and a
  ``#heading`` link to a heading that exists.
- Every environment variable the settings read is in the README's configuration table and
  in docs/operations.md; the README keeps its two commands word for word.
- No doc and no docstring cites a file outside the repository (the design notes the
  project started from are not shipped with it).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from django.contrib.auth.models import User

from tests.support.api import PASSWORD
from tests.support.isoread import read_rr_file
from tests.support.serving import serve_portal

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MARKDOWN = [README, *DOCS]
PYTHON_PACKAGES = ["portal", "isos", "osversions", "tests"]

INSTALL_AND_DEMO = "python -m pip install -e . && python manage.py demo"
INSTALL_AND_TEST = "python -m pip install -e '.[dev]' && python -m pytest"

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# A file outside the repository: the shared design folder, or its notes named bare
# (docs/api.md and the like are this repository's own, and lower case).
OUTSIDE_CITATION = re.compile(r"\.\./shared|shared/design|(?<![\w./-])(?:API|DESIGN|PERFORMANCE)\.md\b")
SETTINGS_VARIABLE = re.compile(r"(?:\benv_\w+|environ\.get|getenv)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']")


def python_snippet() -> str:
    """The README's first ```python block."""
    match = re.search(r"^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    assert match, "README.md has no ```python block"
    return match.group(1)


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the README's snippet should hold {old!r} exactly once"
    return text.replace(old, new)


def write_sample_source(location: Path) -> None:
    """A small ISO source named ``demo``, as the README's snippet asks for (like the demo's)."""
    source = location / "demo"
    files = {
        "isolinux/isolinux.cfg": "default install\nlabel install\n  kernel vmlinuz\n",
        "isolinux/vmlinuz": "not a kernel\n",
        "ks_scripts/ks.cfg": "%include /mnt/install/repo/ks_scripts/password.cfg\n",
        "README.txt": "A sample ISO source.\n",
    }
    for rel, text in files.items():
        path = source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (location / "osversions.json").write_text(json.dumps({"Demo Linux (sample)": "demo"}))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_readme_python_client_snippet_saves_the_iso(
    transactional_db: Any, make_user: Callable[..., User], tmp_path: Path
) -> None:
    snippet = python_snippet()
    iso_name = re.search(r"open\(\"([^\"]+\.iso)\"", snippet)
    host = re.search(r"\"hostName\":\s*\"([^\"]+)\"", snippet)
    domain = re.search(r"\"domainName\":\s*\"([^\"]+)\"", snippet)
    assert iso_name and host and domain, "the snippet should name its ISO file, hostName and domainName"

    location = tmp_path / "kickstart"
    write_sample_source(location)
    make_user("op", "operations")
    work = tmp_path / "client"
    work.mkdir()
    with serve_portal(location, tmp_path / "gunicorn.log", workers=1) as server:
        address = urlsplit(server.url)
        code = replace_once(snippet, 'TOSession("127.0.0.1"', f'TOSession("{address.hostname}"')
        code = replace_once(code, "host_port=8000", f"host_port={address.port}")
        code = replace_once(code, 'to.login("demo", "demo-portal")', f'to.login("op", "{PASSWORD}")')
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=120
        )
    assert run.returncode == 0, run.stdout + run.stderr

    iso_path = work / iso_name.group(1)
    assert iso_path.is_file(), f"the snippet wrote no {iso_path.name}: {sorted(os.listdir(work))}"
    assert iso_path.name == f"{host.group(1)}.{domain.group(1)}-demo.iso", "the name the API would give it"
    network_cfg = read_rr_file(iso_path, "/ks_scripts/network.cfg")
    assert f'HOSTNAME="{host.group(1)}.{domain.group(1)}"'.encode() in network_cfg
    assert b'DHCP="yes"' in network_cfg
    # The source's own files are there too.
    assert read_rr_file(iso_path, "/README.txt") == b"A sample ISO source.\n"


def test_the_readme_keeps_its_two_commands() -> None:
    text = README.read_text()
    assert INSTALL_AND_DEMO in text
    assert INSTALL_AND_TEST in text


def prose(markdown: str) -> str:
    """The text outside code blocks and inline code, where links are links."""
    return INLINE_CODE.sub("", FENCE.sub("", markdown))


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as -."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def relative_links(page: Path) -> Iterator[tuple[str, str, str]]:
    """(link as written, path part, anchor part) of every relative link of a page."""
    for target in LINK.findall(prose(page.read_text())):
        if SCHEME.match(target) or target.startswith("//"):
            continue
        path, _, anchor = target.partition("#")
        yield target, unquote(path), unquote(anchor)


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda page: str(page.relative_to(ROOT)))
def test_no_dead_relative_link(page: Path) -> None:
    dead = []
    for target, path, anchor in relative_links(page):
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(ROOT):
            dead.append(f"{target} (leads outside the repository)")
        elif not resolved.exists():
            dead.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved.read_text()):
            dead.append(f"{target} (no such heading in {resolved.name})")
    assert not dead, f"{page.relative_to(ROOT)}: dead links: {dead}"


def test_the_docs_are_linked_from_the_readme() -> None:
    linked = {(README.parent / path).resolve() for _, path, _ in relative_links(README) if path}
    assert set(DOCS) <= linked, f"not linked from README.md: {sorted(p.name for p in set(DOCS) - linked)}"


def settings_variables() -> list[str]:
    names = SETTINGS_VARIABLE.findall((ROOT / "portal" / "settings.py").read_text())
    assert "SECRET_KEY" in names and "KICKSTART_FILES_LOCATION" in names, "the pattern finds nothing"
    return sorted(set(names) - {"XDG_DATA_HOME"})  # the XDG standard's, named with PORTAL_DATA_DIR


@pytest.mark.parametrize(
    "page", [README, ROOT / "docs" / "operations.md"], ids=["README.md", "operations.md"]
)
def test_every_variable_the_settings_read_is_documented(page: Path) -> None:
    text = page.read_text()
    missing = [name for name in settings_variables() if f"`{name}`" not in text]
    assert not missing, f"{page.name} does not list {missing}"


def docstrings(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of a Python file's module, class and function docstrings."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            text = ast.get_docstring(node, clean=False)
            if text is not None:
                yield (node.body[0].lineno, text)


def test_no_doc_cites_a_file_outside_the_repository() -> None:
    citations = [
        f"{page.relative_to(ROOT)}: {match.group(0)}"
        for page in MARKDOWN
        for match in OUTSIDE_CITATION.finditer(page.read_text())
    ]
    assert not citations, citations


def test_no_docstring_cites_a_file_outside_the_repository() -> None:
    citations = []
    for package in PYTHON_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, text in docstrings(path):
                for match in OUTSIDE_CITATION.finditer(text):
                    citations.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0)}")
    assert not citations, "docstrings citing files outside the repository: " + ", ".join(citations)
