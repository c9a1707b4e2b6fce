"""An /etc/hosts block so that every node resolves every other node by name."""

from __future__ import annotations

from provision.remote.host import Host, check, read_file
from provision.render import render

HOSTS = "/etc/hosts"


def markers(lab: str) -> tuple[str, str]:
    return f"# BEGIN swarmdeck lab {lab}", f"# END swarmdeck lab {lab}"


def with_block(text: str, lab: str, entries: dict[str, str]) -> str:
    """``text`` with the lab's block (``{name: address}``) replaced or appended."""
    begin, end = markers(lab)
    block = render("hosts/block.j2", begin=begin, end=end, entries=sorted(entries.items()))
    lines = text.splitlines(keepends=True)
    if begin + "\n" in lines and end + "\n" in lines:
        start, stop = lines.index(begin + "\n"), lines.index(end + "\n")
        return "".join(lines[:start]) + block + "".join(lines[stop + 1 :])
    if text and not text.endswith("\n"):
        text += "\n"
    return text + block


def ensure_hosts_block(host: Host, lab: str, entries: dict[str, str]) -> bool:
    current = read_file(host, HOSTS) or ""
    wanted = with_block(current, lab, entries)
    if wanted == current:
        return False
    # Write in place: in a container /etc/hosts is a bind mount and cannot be replaced.
    host.put(wanted.encode(), "/tmp/swarmdeck-hosts")
    check(host, f"cat /tmp/swarmdeck-hosts > {HOSTS} && rm -f /tmp/swarmdeck-hosts")
    return True
