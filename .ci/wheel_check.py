"""CI: the wheel an operator installs works, from a fresh virtualenv outside the checkout.

Builds the wheel, installs it into a new virtualenv in a temporary folder, and from
there runs what an operator runs: migrate, check, the demo's setup, sync_osversions, one
generate_iso (read back: the host's network.cfg is in it), and gunicorn serving the
login page, the Generate ISO page and a static file. The benchmark must not be there, and
nothing may be written inside site-packages (the data folder holds it all).
A failing import or a missing template fails here. Standard library only.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def run(*command: str | Path, env: dict[str, str], cwd: Path, stdin: str | None = None) -> str:
    print("$", " ".join(str(part) for part in command), flush=True)
    result = subprocess.run(
        [str(part) for part in command], env=env, cwd=cwd, input=stdin, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check_pages(base: str) -> None:
    """Log in through the page form, open the Generate ISO page and a static file."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    for _ in range(100):
        try:
            login_page = opener.open(base + "/login/").read().decode()
            break
        except OSError:
            time.sleep(0.2)
    else:
        sys.exit("gunicorn did not answer")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page)
    assert token, "the login page has no form"
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token.group(1), "username": "demo", "password": "demo-portal"}
    ).encode()
    login = urllib.request.Request(base + "/login/", data=form, headers={"Referer": base + "/login/"})  # noqa: S310 (http only)
    opener.open(login)
    generate_page = opener.open(base + "/isos/generate/").read().decode()
    assert "Generate ISO" in generate_page and 'name="hostName"' in generate_page, generate_page[:500]
    css = opener.open(base + "/static/portal/portal.css")
    assert css.status == 200 and css.read(), "no static file"
    print("pages: login, Generate ISO and a static file served from the wheel")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="wheel-check-"))
    base_env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO", "PYTHON"))}
    base_env.pop("DATABASE_URL", None)
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "-w",
        work / "dist",
        CHECKOUT,
        env=base_env,
        cwd=work,
    )
    wheel = next((work / "dist").glob("iso_portal-*.whl"))
    run(sys.executable, "-m", "venv", work / "venv", env=base_env, cwd=work)
    venv_bin = work / "venv" / "bin"
    run(venv_bin / "pip", "install", "-q", wheel, env=base_env, cwd=work)

    data = work / "data"
    env = {**base_env, "PATH": f"{venv_bin}:{base_env['PATH']}", "PORTAL_DATA_DIR": str(data)}
    portal = venv_bin / "iso-portal"
    # The demo's setup makes the data folder, its secret key, a sample source and a login.
    run(portal, "demo", "--no-serve", env=env, cwd=work)
    run(portal, "migrate", env=env, cwd=work)
    run(portal, "check", env=env, cwd=work)
    print(run(portal, "sync_osversions", env=env, cwd=work))
    help_text = run(portal, "help", env=env, cwd=work)
    assert "isobench" not in help_text, "the benchmark must not ship in the wheel"
    installed = run(venv_bin / "python", "-c", "import portal; print(portal.__file__)", env=env, cwd=work)
    assert str(CHECKOUT) not in installed, f"portal imported from the checkout: {installed}"

    iso = work / "edge1.iso"
    run(
        portal, "generate_iso", "--user", "demo", "--root-pass-stdin", "--osversion-dir", "demo",
        "--host-name", "edge1", "--domain-name", "cdn.example", "--dhcp", "yes", "--interface-mtu", "1500",
        "--output", iso, env=env, cwd=work, stdin="changeme\n",
    )  # fmt: skip
    read_back = run(
        venv_bin / "python", "-c",
        "import pycdlib, io, sys; iso = pycdlib.PyCdlib(); iso.open(sys.argv[1]); out = io.BytesIO(); "
        "iso.get_file_from_iso_fp(out, rr_path='/ks_scripts/network.cfg'); print(out.getvalue().decode())",
        iso, env=env, cwd=work,
    )  # fmt: skip
    assert 'HOSTNAME="edge1.cdn.example"' in read_back, read_back
    print(f"generate_iso: {iso.stat().st_size} bytes, network.cfg names edge1.cdn.example")

    port = free_port()
    server = subprocess.Popen(
        [venv_bin / "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=env,
        cwd=work,
    )
    try:
        check_pages(f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    site_packages = Path(installed.strip()).parent.parent
    written = [
        name
        for name in (".secret_key", "db.sqlite3", "kickstart-files", "staticfiles")
        if (site_packages / name).exists()
    ]
    assert not written, f"written inside site-packages: {written}"
    assert {path.name for path in data.iterdir()} >= {".secret_key", "db.sqlite3", "kickstart-files"}
    print("nothing written inside site-packages; the data folder:", sorted(p.name for p in data.iterdir()))
    print("wheel check passed")


if __name__ == "__main__":
    main()
