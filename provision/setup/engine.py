"""The Docker engine's configuration (daemon.json and TLS), restarted only on change."""

from __future__ import annotations

import hashlib
import shlex

from provision import hints
from provision.paths import TEMPLATES
from provision.remote.host import Host, check, read_file
from provision.remote.node_files import File
from provision.wait import wait_until

# systemd drop-ins for Debian's docker units: dockerd takes its sockets from daemon.json
SYSTEMD_DROPINS = {
    "/etc/systemd/system/docker.service.d/swarmdeck.conf": TEMPLATES / "docker" / "systemd-dropin.conf",
    "/etc/systemd/system/docker.socket.d/swarmdeck.conf": TEMPLATES / "docker" / "systemd-socket-dropin.conf",
}
RUNS_SYSTEMD = "test -d /run/systemd/system"

RESTART = (
    "if [ -d /etc/service/docker ]; then sv -w 60 restart /etc/service/docker; "
    "elif command -v systemctl >/dev/null; then systemctl restart docker; "
    "else service docker restart; fi"
)


def ensure_engine_config(host: Host, files: list[File]) -> bool:
    """Write each file whose content differs; restart the engine if any did."""
    changed = [f for f in files if _digest(read_file(host, f.path)) != _digest(f.content.decode())]
    for file in changed:
        check(host, f"mkdir -p {shlex.quote(file.path.rsplit('/', 1)[0])}")
        host.put(file.content, file.path, file.mode)
    if changed:
        restart_engine(host)
    return bool(changed)


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


def restart_engine(host: Host) -> None:
    check(host, RESTART, hint=f"look at /var/log/dockerd.log on the node ({hints.command('lab.ssh', 'NODE')})")
    wait_for_engine(host)


def wait_for_engine(host: Host, timeout: float = 60) -> None:
    wait_until(
        # `timeout`: a client must not wait on a socket nobody serves (engine starting)
        lambda: host.run("timeout 10 docker version --format '{{.Server.Version}}'").ok,
        timeout=timeout,
        interval=0.3,
        describe=f"the Docker engine on {host.name} to answer",
        hint="a bad daemon.json stops dockerd: read /var/log/dockerd.log on the node",
    )


def _digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()
