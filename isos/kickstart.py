"""The per-host files of ``ks_scripts/``: a validated request in, file bytes out.

The formats are Traffic Ops' own, byte for byte (docs/api.md): the installer ``source``s
these files, so every value is double-quoted and has already passed a rule that keeps
``"``, ``\\``, ``$``, backticks and newlines out.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from isos.passwords import hash_root_password

logger = logging.getLogger(__name__)

KS_SCRIPTS_DIR = "ks_scripts"
BOND_NAME = re.compile(r"^bond\d+")
BONDING_OPTS = "miimon=100 mode=4 lacp_rate=fast xmit_hash_policy=layer3+4"


@dataclass(frozen=True)
class IsoRequest:
    """A request that passed every rule; addresses already in their normal form."""

    osversion_dir: str
    host_name: str
    domain_name: str
    root_pass: str
    dhcp: bool
    interface_mtu: int
    ip_address: str = ""
    ip_netmask: str = ""
    ip_gateway: str = ""
    ip6_address: str = ""
    ip6_gateway: str = ""
    interface_name: str = ""
    disk: str = ""
    mgmt_ip_address: str = ""
    mgmt_ip_netmask: str = ""
    mgmt_ip_gateway: str = ""
    mgmt_interface: str = ""

    @property
    def fqdn(self) -> str:
        return f"{self.host_name}.{self.domain_name}"

    def __repr__(self) -> str:
        # The dataclass repr would print the root password into any log or traceback.
        return f"IsoRequest(fqdn={self.fqdn!r}, osversion_dir={self.osversion_dir!r})"


def cfg_lines(pairs: Sequence[tuple[str, str]]) -> str:
    """``KEY="value"`` lines joined by newlines, no newline at the end."""
    return "\n".join(f'{key}="{value}"' for key, value in pairs)


def render_network_cfg(request: IsoRequest, nameservers: Sequence[str]) -> bytes:
    """network.cfg; static addresses are blank with dhcp, a bond gets BONDING_OPTS."""
    static = not request.dhcp
    bonded = bool(BOND_NAME.match(request.interface_name))
    pairs = [
        ("IPADDR", request.ip_address if static else ""),
        ("NETMASK", request.ip_netmask if static else ""),
        ("GATEWAY", request.ip_gateway if static else ""),
        ("BOND_DEVICE" if bonded else "DEVICE", request.interface_name),
        ("MTU", str(request.interface_mtu)),
        ("NAMESERVER", ",".join(nameservers)),
        ("HOSTNAME", request.fqdn),
        ("NETWORKING_IPV6", "yes"),
        ("IPV6ADDR", request.ip6_address if static else ""),
        ("IPV6_DEFAULTGW", request.ip6_gateway if static else ""),
    ]
    if bonded:
        pairs.append(("BONDING_OPTS", BONDING_OPTS))
    pairs.append(("DHCP", "yes" if request.dhcp else "no"))
    return cfg_lines(pairs).encode()


def render_mgmt_network_cfg(request: IsoRequest) -> bytes:
    """mgmt_network.cfg, always written; an IPv6 address goes in IPV6ADDR."""
    address = request.mgmt_ip_address
    is_ipv6 = ":" in address
    return cfg_lines(
        [
            ("IPV6ADDR" if is_ipv6 else "IPADDR", address),
            ("NETMASK", request.mgmt_ip_netmask),
            ("GATEWAY", request.mgmt_ip_gateway),
            ("DEVICE", request.mgmt_interface),
        ]
    ).encode()


def render_disk_cfg(request: IsoRequest) -> bytes:
    return cfg_lines([("boot_drives", request.disk)]).encode()


def render_password_cfg(request: IsoRequest, scheme: str) -> bytes:
    return f"rootpw --iscrypted {hash_root_password(request.root_pass, scheme)}\n".encode()


def render_state_out(request: IsoRequest, boot_description: str) -> bytes:
    """One line naming the build; Traffic Ops put its mkisofs command line here."""
    return f"portal build of {request.osversion_dir} for {request.fqdn}; {boot_description}\n".encode()


def nameservers_from_resolv_conf(path: Path) -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf, in file order.

    Anything that is not a plain IP address (a zone suffix, a typo) is left out: the
    value is written between quotes into a file the installer sources.
    """
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as error:
        logger.warning("cannot read %s: %s; writing no nameservers", path, error)
        return []
    servers = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        try:
            if "%" in fields[1]:  # a link-local zone means nothing on the installed host
                raise ValueError(fields[1])
            servers.append(str(ipaddress.ip_address(fields[1])))
        except ValueError:
            logger.warning("%s: ignoring nameserver %r", path, fields[1])
    return servers


def render_ks_scripts(
    request: IsoRequest, nameservers: Sequence[str], password_scheme: str, boot_description: str
) -> dict[str, bytes]:
    """Every per-host file, keyed by its path in the ISO."""
    files = {
        "network.cfg": render_network_cfg(request, nameservers),
        "mgmt_network.cfg": render_mgmt_network_cfg(request),
        "disk.cfg": render_disk_cfg(request),
        "password.cfg": render_password_cfg(request, password_scheme),
        "state.out": render_state_out(request, boot_description),
    }
    return {f"{KS_SCRIPTS_DIR}/{name}": data for name, data in files.items()}
