"""The ks_scripts files, byte for byte as docs/api.md shows them, and the root password hash."""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path

import pytest
from passlib.hash import md5_crypt, sha512_crypt

from isos.kickstart import (
    IsoRequest,
    nameservers_from_resolv_conf,
    render_disk_cfg,
    render_ks_scripts,
    render_mgmt_network_cfg,
    render_network_cfg,
    render_password_cfg,
)
from isos.passwords import hash_root_password

NAMESERVERS = ["8.8.8.8", "8.8.4.4"]


def api_example(**overrides: object) -> IsoRequest:
    values: dict[str, object] = {
        "osversion_dir": "centos72",
        "host_name": "test",
        "domain_name": "quest",
        "root_pass": "twelve",
        "dhcp": False,
        "interface_mtu": 1500,
        "ip_address": "1.3.3.7",
        "ip_netmask": "255.255.255.255",
        "ip_gateway": "8.0.0.8",
        "ip6_address": "1::3:3:7",
        "ip6_gateway": "8::8",
        "interface_name": "eth0",
        "disk": "sda",
    }
    values.update(overrides)
    return IsoRequest(**values)  # type: ignore[arg-type]


def test_network_cfg_static_is_byte_exact() -> None:
    assert render_network_cfg(api_example(), NAMESERVERS) == (
        b'IPADDR="1.3.3.7"\n'
        b'NETMASK="255.255.255.255"\n'
        b'GATEWAY="8.0.0.8"\n'
        b'DEVICE="eth0"\n'
        b'MTU="1500"\n'
        b'NAMESERVER="8.8.8.8,8.8.4.4"\n'
        b'HOSTNAME="test.quest"\n'
        b'NETWORKING_IPV6="yes"\n'
        b'IPV6ADDR="1::3:3:7"\n'
        b'IPV6_DEFAULTGW="8::8"\n'
        b'DHCP="no"'
    )


def test_network_cfg_bond_gets_bond_device_and_lacp_options() -> None:
    cfg = render_network_cfg(api_example(interface_name="bond0", interface_mtu=9000), NAMESERVERS)
    assert cfg == (
        b'IPADDR="1.3.3.7"\n'
        b'NETMASK="255.255.255.255"\n'
        b'GATEWAY="8.0.0.8"\n'
        b'BOND_DEVICE="bond0"\n'
        b'MTU="9000"\n'
        b'NAMESERVER="8.8.8.8,8.8.4.4"\n'
        b'HOSTNAME="test.quest"\n'
        b'NETWORKING_IPV6="yes"\n'
        b'IPV6ADDR="1::3:3:7"\n'
        b'IPV6_DEFAULTGW="8::8"\n'
        b'BONDING_OPTS="miimon=100 mode=4 lacp_rate=fast xmit_hash_policy=layer3+4"\n'
        b'DHCP="no"'
    )


def test_network_cfg_dhcp_blanks_every_static_address() -> None:
    cfg = render_network_cfg(api_example(dhcp=True), ["10.0.0.53"])
    assert cfg == (
        b'IPADDR=""\n'
        b'NETMASK=""\n'
        b'GATEWAY=""\n'
        b'DEVICE="eth0"\n'
        b'MTU="1500"\n'
        b'NAMESERVER="10.0.0.53"\n'
        b'HOSTNAME="test.quest"\n'
        b'NETWORKING_IPV6="yes"\n'
        b'IPV6ADDR=""\n'
        b'IPV6_DEFAULTGW=""\n'
        b'DHCP="yes"'
    )


def test_bond_name_must_start_with_bond_and_digits() -> None:
    assert b"BOND_DEVICE" not in render_network_cfg(api_example(interface_name="bondx"), NAMESERVERS)
    assert b'BOND_DEVICE="bond12"' in render_network_cfg(api_example(interface_name="bond12"), NAMESERVERS)


def test_mgmt_network_cfg_ipv4_ipv6_and_unused() -> None:
    ipv4 = api_example(
        mgmt_ip_address="10.0.0.5",
        mgmt_ip_netmask="255.255.255.0",
        mgmt_ip_gateway="10.0.0.1",
        mgmt_interface="em3",
    )
    assert render_mgmt_network_cfg(ipv4) == (
        b'IPADDR="10.0.0.5"\nNETMASK="255.255.255.0"\nGATEWAY="10.0.0.1"\nDEVICE="em3"'
    )
    ipv6 = api_example(mgmt_ip_address="2001:db8::5", mgmt_ip_gateway="2001:db8::1", mgmt_interface="em3")
    assert render_mgmt_network_cfg(ipv6) == (
        b'IPV6ADDR="2001:db8::5"\nNETMASK=""\nGATEWAY="2001:db8::1"\nDEVICE="em3"'
    )
    assert render_mgmt_network_cfg(api_example()) == b'IPADDR=""\nNETMASK=""\nGATEWAY=""\nDEVICE=""'


def test_disk_cfg_has_no_trailing_newline() -> None:
    assert render_disk_cfg(api_example()) == b'boot_drives="sda"'
    assert render_disk_cfg(api_example(disk="")) == b'boot_drives=""'


def test_password_cfg_is_sha512_crypt_with_16_char_salt() -> None:
    line = render_password_cfg(api_example(), "sha512").decode()
    match = re.fullmatch(r"rootpw --iscrypted (\$6\$([./0-9A-Za-z]{16})\$[./0-9A-Za-z]{86})\n", line)
    assert match, line
    assert sha512_crypt.verify("twelve", match.group(1))
    assert "twelve" not in line


def test_password_hash_agrees_with_the_system_crypt() -> None:
    """An independent check of the hash, by the C library, where Python still exposes it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            system_crypt = importlib.import_module("crypt")
        except ImportError:
            pytest.skip("this Python has no crypt module")
    hashed = hash_root_password('pa ss$`"word', "sha512")
    assert system_crypt.crypt('pa ss$`"word', hashed) == hashed
    md5 = hash_root_password("twelve", "md5")
    assert system_crypt.crypt("twelve", md5) == md5


def test_md5_crypt_by_setting() -> None:
    line = render_password_cfg(api_example(), "md5").decode()
    match = re.fullmatch(r"rootpw --iscrypted (\$1\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{22})\n", line)
    assert match, line
    assert md5_crypt.verify("twelve", match.group(1))


def test_salts_differ_between_hashes() -> None:
    salts = {hash_root_password("same").split("$")[2] for _ in range(20)}
    assert len(salts) == 20


def test_unknown_hash_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="sha512 or md5"):
        hash_root_password("x", "des")


def test_ks_scripts_holds_every_file_and_no_password() -> None:
    files = render_ks_scripts(api_example(), NAMESERVERS, "sha512", "BIOS El Torito: isolinux/isolinux.bin")
    assert sorted(files) == [
        "ks_scripts/disk.cfg",
        "ks_scripts/mgmt_network.cfg",
        "ks_scripts/network.cfg",
        "ks_scripts/password.cfg",
        "ks_scripts/state.out",
    ]
    state = files["ks_scripts/state.out"]
    assert state.endswith(b"\n") and state.count(b"\n") == 1
    assert b"centos72" in state and b"isolinux" in state
    assert all(b"twelve" not in data for data in files.values())


def test_request_repr_hides_the_password() -> None:
    assert "twelve" not in repr(api_example())
    assert "twelve" not in str(api_example())


def test_nameservers_from_resolv_conf_in_file_order(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver  2001:DB8::53\n"
        "nameserver fe80::1%eth0\nnameserver 10.0.0.3 # second\noptions edns0\n"
    )
    assert nameservers_from_resolv_conf(resolv) == ["10.0.0.2", "2001:db8::53", "10.0.0.3"]
    assert nameservers_from_resolv_conf(tmp_path / "missing") == []
