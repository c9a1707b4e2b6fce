"""The lab network of the libvirt provider: a NAT network (``swarmdeck-<lab>``) whose DHCP
server holds a reservation per node MAC, so each node keeps its address across reboots."""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
import xml.etree.ElementTree as ET

from provision.plan import LabPlan
from provision.render import render

AUTO_SUBNETS = ipaddress.ip_network("10.201.0.0/16")


def network_name(lab: str) -> str:
    return f"swarmdeck-{lab}"


def mac_address(lab: str, node: str) -> str:
    """A stable locally administered MAC in QEMU's 52:54:00 range, from the lab and node names."""
    digest = hashlib.sha256(f"{lab}/{node}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def bridge_name(lab: str) -> str:
    return "sd" + hashlib.sha256(lab.encode()).hexdigest()[:10]  # Linux allows 15 characters


def network_xml(plan: LabPlan) -> str:
    subnet = ipaddress.ip_network(plan.subnet)
    hosts = list(subnet.hosts())
    nodes = [{"name": n.name, "address": n.address, "mac": mac_address(plan.name, n.name)} for n in plan.nodes]
    return render("libvirt/network.xml.j2", name=network_name(plan.name), bridge=bridge_name(plan.name), mtu=plan.mtu,
                  gateway=str(subnet[1]), netmask=str(subnet.netmask), dhcp_start=str(hosts[len(hosts) // 2]),
                  dhcp_end=str(hosts[-1]), nodes=nodes)


def network_subnet(xml: str) -> str | None:
    ip = ET.fromstring(xml).find("ip")
    if ip is None or ip.get("family", "ipv4") != "ipv4" or not ip.get("address"):
        return None
    mask = ip.get("netmask") or ip.get("prefix")
    return str(ipaddress.ip_network(f"{ip.get('address')}/{mask}", strict=False))


def host_subnets() -> dict[str, str]:
    """Subnets of this machine's interfaces (a lab network must not overlap them)."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[1] != "lo":
            found[f"interface {parts[1]}"] = str(ipaddress.ip_interface(parts[3]).network)
    return found
