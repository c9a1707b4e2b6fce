"""The engine as a systemd service: Debian's docker units started by systemd name their sockets
with ``-H fd://``, which dockerd refuses beside daemon.json's "hosts"; these drop-ins let
daemon.json name them (images swarmdeck builds carry the files already)."""

from __future__ import annotations

import shlex

from provision.paths import TEMPLATES
from provision.remote.host import Host, check, read_file

# systemd drop-ins for Debian's docker units: dockerd takes its sockets from daemon.json
SYSTEMD_DROPINS = {
    "/etc/systemd/system/docker.service.d/swarmdeck.conf": TEMPLATES / "docker" / "systemd-dropin.conf",
    "/etc/systemd/system/docker.socket.d/swarmdeck.conf": TEMPLATES / "docker" / "systemd-socket-dropin.conf",
}
RUNS_SYSTEMD = "test -d /run/systemd/system"


def ensure_engine_service(host: Host) -> bool:
    """On systemd hosts, the drop-ins that let daemon.json name the engine's sockets.

    Debian's docker.service starts dockerd with ``-H fd://``, which dockerd refuses next
    to daemon.json's "hosts"; images swarmdeck builds carry these files already.
    """
    if not host.run(RUNS_SYSTEMD).ok:
        return False  # container nodes: runit runs dockerd without flags
    changed = False
    for path, source in SYSTEMD_DROPINS.items():
        content = source.read_text()
        if read_file(host, path) != content:
            check(host, f"mkdir -p {shlex.quote(path.rsplit('/', 1)[0])}")
            host.put(content.encode(), path)
            changed = True
    if changed:
        check(host, "systemctl daemon-reload && systemctl enable docker.service >/dev/null 2>&1; "
                    "systemctl restart docker.socket", hint="see `journalctl -u docker.socket` on the node")
    return changed
