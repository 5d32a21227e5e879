"""``manage.py demo``: a running portal on a laptop in one command.

Makes the data directory and a laptop's secret key there (unless SECRET_KEY is set),
migrates the database (SQLite unless DATABASE_URL says otherwise), makes a sample ISO
source in the kickstart files location when it has no osversions.json yet, creates the
demo login, binds its port, and only then prints where to go and serves (Django's
development server, threaded). Without Debian's isolinux the sample claims no boot entry.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, get_internal_wsgi_application

from portal.laptop_key import make_laptop_key

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-portal"  # noqa: S105 - a demo login on a laptop, printed on purpose
DEMO_SOURCE = "demo"
DEBIAN_ISOLINUX = Path("/usr/lib/ISOLINUX/isolinux.bin")
NOT_BOOTABLE_HINT = (
    "The sample ISO is not bootable: install Debian's isolinux (apt-get install isolinux), "
    "then run manage.py demo again."
)

ISOLINUX_CFG = """default install
prompt 0
timeout 30
label install
  kernel vmlinuz
  append initrd=initrd.img inst.ks=cdrom:/ks_scripts/ks.cfg
"""
KICKSTART = """# Sample kickstart: the portal adds this host's settings beside this file.
%pre
. /mnt/install/repo/ks_scripts/network.cfg
%end
%include /mnt/install/repo/ks_scripts/password.cfg
"""


def sample_boot_file(source: Path) -> bool:
    """Give the sample Debian's isolinux.bin when it is installed; whether the sample boots.

    Without it the sample has no isolinux.bin at all, so no boot entry is claimed and
    state.out says "not bootable" (a placeholder of zeros once passed for a boot image).
    """
    boot = source / "isolinux" / "isolinux.bin"
    if boot.is_file() and not boot.read_bytes().strip(b"\0"):
        boot.unlink()  # an older demo's placeholder
    if DEBIAN_ISOLINUX.is_file() and not boot.exists():
        shutil.copyfile(DEBIAN_ISOLINUX, boot)
    return boot.is_file()


def make_sample_source(location: Path) -> bool:
    """A small ISO source and osversions.json, unless the location already has a catalog."""
    catalog = location / "osversions.json"
    if catalog.exists():
        return False
    source = location / DEMO_SOURCE
    (source / "isolinux").mkdir(parents=True, exist_ok=True)
    (source / "ks_scripts").mkdir(exist_ok=True)
    (source / "isolinux" / "isolinux.cfg").write_text(ISOLINUX_CFG)
    (source / "ks_scripts" / "ks.cfg").write_text(KICKSTART)
    (source / "README.txt").write_text("A sample ISO source made by manage.py demo.\n")
    catalog.write_text(json.dumps({"Demo Linux (sample)": DEMO_SOURCE}, indent=2) + "\n")
    return True


class Command(BaseCommand):
    help = "Set up a demo portal (database, sample ISO source, demo login) and run it."
    # Checked in handle(), once the data directory and its secret key exist.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addrport", default="127.0.0.1:8000", help="Where to serve.")
        parser.add_argument("--no-serve", action="store_true", help="Set up only; do not serve.")

    def handle(self, *args: Any, **options: Any) -> None:
        data_dir = Path(settings.DATA_DIR)
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            settings.SECRET_KEY  # noqa: B018  (raises when empty)
        except ImproperlyConfigured:
            settings.SECRET_KEY = make_laptop_key(data_dir)
        call_command("migrate", interactive=False, verbosity=0)
        location = Path(settings.KICKSTART_FILES_LOCATION)
        location.mkdir(parents=True, exist_ok=True)
        if make_sample_source(location):
            self.stdout.write(f"Made a sample ISO source in {location}")
        sample = location / DEMO_SOURCE
        sample_boots = sample_boot_file(sample) if (sample / "isolinux").is_dir() else True
        self.check()
        user, created = User.objects.get_or_create(username=DEMO_USER, defaults={"is_staff": True})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
            user.groups.add(Group.objects.get(name="admin"))
        server = None if options["no_serve"] else listen(options["addrport"])
        url = f"http://{options['addrport']}"
        login = json.dumps({"u": DEMO_USER, "p": DEMO_PASSWORD})
        request = json.dumps(
            {
                "osversionDir": DEMO_SOURCE,
                "hostName": "edge1",
                "domainName": "cdn.example",
                "rootPass": "changeme",
                "dhcp": "yes",
                "interfaceMtu": 1500,
            }
        )
        json_header = "-H 'Content-Type: application/json'"
        # Only once the port is ours: "ready" must be true.
        ready = "Portal ready" if server is not None else "Portal set up (not serving: --no-serve)"
        self.stdout.write(self.style.SUCCESS(f"\n{ready}: {url}/  (log in as {DEMO_USER} / {DEMO_PASSWORD})"))
        self.stdout.write(
            f"Generate ISO: {url}/isos/generate/\nAdmin: {url}/admin/\nTry it with curl:\n"
            f"  curl -c jar {json_header} -d '{login}' {url}/api/5.0/user/login\n"
            f"  curl -b jar {json_header} -OJ -d '{request}' {url}/api/5.0/isos\n"
        )
        if not sample_boots:
            self.stdout.write(self.style.WARNING(NOT_BOOTABLE_HINT))
        if server is not None:
            self.stdout.write("Serving; Ctrl-C stops it.")
            self.stdout.flush()
            serve(server)


def listen(addrport: str) -> ThreadedWSGIServer:
    """Django's development server bound to ``addrport`` (host:port, [v6]:port), not yet serving;
    a busy port is a CommandError saying so, with another port to try."""
    host, _, port_text = addrport.rpartition(":")
    ipv6 = host.startswith("[") and host.endswith("]")
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise CommandError(f"--addrport {addrport}: expected host:port, e.g. 127.0.0.1:8000")
    port = int(port_text)
    try:
        return ThreadedWSGIServer((host, port), WSGIRequestHandler, ipv6=ipv6)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            shown = f"[{host}]" if ipv6 else host
            other = port + 1 if port < 65535 else 8001
            raise CommandError(
                f"Port {port} on {shown} is busy: another program (perhaps another demo) is "
                f"listening there. Try: manage.py demo --addrport {shown}:{other}"
            ) from None
        raise CommandError(f"Cannot listen on {addrport}: {error.strerror}") from None


def serve(server: ThreadedWSGIServer) -> None:
    """Serve until Ctrl-C. Static files come from whitenoise (settings), as in production."""
    server.set_app(get_internal_wsgi_application())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
