"""Open the lab's ports where the host runs a firewall: Swarm's 2377/tcp, 7946/tcp+udp and
4789/udp, and the engine's TLS port 2376/tcp that swarmdeck and `lab.env` use."""

from __future__ import annotations

from provision.remote.host import Host, check

SWARM_PORTS = ("2377/tcp", "7946/tcp", "7946/udp", "4789/udp")
LAB_PORTS = SWARM_PORTS + ("2376/tcp",)

DETECT = (
    "if command -v ufw >/dev/null && ufw status 2>/dev/null | grep -q 'Status: active'; then echo ufw; "
    "elif command -v firewall-cmd >/dev/null && firewall-cmd --state >/dev/null 2>&1; then echo firewalld; "
    "elif iptables -S INPUT 2>/dev/null | grep -qE '^-P INPUT (DROP|REJECT)'; then echo iptables; "
    "else echo none; fi"
)


def detect_firewall(host: Host) -> str:
    return check(host, DETECT).strip() or "none"


def open_commands(firewall: str, port: str) -> tuple[str, str]:
    """(is-open check, open command) for ``port`` ("2377/tcp") under ``firewall``."""
    number, proto = port.split("/")
    if firewall == "ufw":
        return f"ufw status | grep -q '^{port} '", f"ufw allow {port}"
    if firewall == "firewalld":
        return (f"firewall-cmd --query-port={port}",
                f"firewall-cmd --permanent --add-port={port} && firewall-cmd --add-port={port}")
    rule = f"INPUT -p {proto} --dport {number} -j ACCEPT"
    return f"iptables -C {rule}", f"iptables -I {rule}"


def ensure_lab_ports(host: Host) -> bool:
    firewall = detect_firewall(host)
    if firewall == "none":
        return False
    changed = False
    for port in LAB_PORTS:
        is_open, open_port = open_commands(firewall, port)
        if not host.run(is_open).ok:
            check(host, open_port)
            changed = True
    return changed
