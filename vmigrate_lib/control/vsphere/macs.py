"""Bob keeps Alice's MAC addresses: made static in his ``.vmx``, checked after RegisterVM.

A guest's network configuration is bound to its NIC's MAC (udev/netplan match by
MAC, a static IP sits on that NIC).  Alice's MACs are "generated" (by the host,
OUI 00:0c:29) or "vpx" (by vCenter, 00:50:56:80-BF), and vCenter keeps a generated
MAC only "unless the virtual machine's MAC address conflicts with that of another
registered virtual machine" (vSphere Networking, "MAC Address Assignment from
vCenter Server"): Alice stays registered with the same MAC, so Bob's could be
regenerated and his guest would come up with a new NIC and no IP.  So Bob's NICs
become ``addressType = "static"`` with Alice's address, which vCenter does not
regenerate, and each is read back after registration: a mismatch stops the
cutover before Bob is powered on.

A static MAC must be in 00:50:56:00:00:00-00:50:56:3F:FF:FF or outside VMware's
OUIs (vSphere Networking, "Assign a MAC Address ... static"; since 5.1 a VM with
another VMware-OUI static MAC fails to power on); Alice's generated addresses are
outside that range, so Bob's NIC also gets ``ethernetN.checkMACAddress = "FALSE"``,
the documented way to power on with such an address (vstellar.com, "Static mac
address in Esxi 5.5 conflicts with VMware reserved MACs").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import MacMismatch

_LINE = re.compile(r'^\s*(?P<key>ethernet(?P<n>\d+)\.(?P<field>[A-Za-z]+))\s*=\s*"(?P<value>[^"]*)"\s*$')


def in_static_range(mac: str) -> bool:
    """A MAC ESXi accepts as static without ``checkMACAddress = "FALSE"``."""
    mac = mac.lower()
    if mac.startswith("00:0c:29:") or mac.startswith("00:05:69:"):
        return False
    return not mac.startswith("00:50:56:") or int(mac[9:11], 16) <= 0x3F


def _nics(lines: Sequence[str]) -> dict[str, dict[str, str]]:
    """ethernetN -> {field (lower case): value} of the .vmx lines."""
    out: dict[str, dict[str, str]] = {}
    for line in lines:
        m = _LINE.match(line)
        if m is not None:
            out.setdefault(f"ethernet{m['n']}", {})[m["field"].lower()] = m["value"]
    return out


def vmx_macs(text: str) -> dict[str, str]:
    """ethernetN -> the MAC the .vmx gives it (static address, else the generated one)."""
    out = {}
    for nic, f in _nics(text.splitlines()).items():
        static = f.get("addresstype", "").lower() == "static"
        mac = (f.get("address") if static else f.get("generatedaddress")) or ""
        if f.get("present", "").lower() == "true" and mac:
            out[nic] = mac.lower()
    return out


def make_static(data: bytes) -> bytes:
    """Every present NIC with a known MAC: ``addressType = "static"`` with that address
    (``checkMACAddress = "FALSE"`` when outside the static range); the generated keys go."""
    text = data.decode("utf-8", errors="surrogateescape")
    nl = "\r\n" if "\r\n" in text else "\n"
    macs = vmx_macs(text)
    out = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is not None and f"ethernet{m['n']}" in macs and m["field"].lower() in (
                "addresstype", "address", "generatedaddress", "generatedaddressoffset",
                "checkmacaddress"):
            continue
        out.append(line)
    for nic, mac in sorted(macs.items()):
        out += [f'{nic}.addressType = "static"', f'{nic}.address = "{mac}"']
        if not in_static_range(mac):
            out.append(f'{nic}.checkMACAddress = "FALSE"')
    return (nl.join(out) + nl).encode("utf-8", errors="surrogateescape")


def static_in(prepare: Callable[..., dict[str, bytes]], name: str, *args: Any) -> dict[str, bytes]:
    """``prepare(name, *args)`` (Bob's files, e.g. :func:`..vmxtext.prepare`), with the
    NICs of his ``<name>.vmx`` made static (:func:`make_static`)."""
    files = prepare(name, *args)
    vmx = f"{name}.vmx"
    if vmx in files:
        files[vmx] = make_static(files[vmx])
    return files


def check(name: str, have: Sequence[str], want: Sequence[str], source: str) -> None:
    """Raise :class:`MacMismatch` unless ``name``'s MACs are ``want`` (the source's)."""
    if not want or [m.lower() for m in have] == [m.lower() for m in want]:
        return
    raise MacMismatch(
        f"VM {name} was registered with MAC address(es) {', '.join(have) or 'none'}, "
        f"not {source}'s {', '.join(want)}: its guest would see new NICs",
        vm=name, macs=list(have), expected=list(want))


__all__ = ["check", "in_static_range", "make_static", "static_in", "vmx_macs"]
