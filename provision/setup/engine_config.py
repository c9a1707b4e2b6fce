"""The Docker engine's configuration (daemon.json and TLS), restarted only on change; the engine
awaited after a restart."""

from __future__ import annotations

import hashlib
import shlex

from provision import hints
from provision.remote.host import Host, check, read_file
from provision.remote.node_files import File
from provision.wait import wait_until

RESTART = (
    "if [ -d /etc/service/docker ]; then sv -w 60 restart /etc/service/docker; "
    "elif command -v systemctl >/dev/null; then systemctl restart docker; "
    "else service docker restart; fi"
)


ENGINE_WAIT = 60  # seconds for an engine to answer after a (re)start, on machines of pace 1


def ensure_engine_config(host: Host, files: list[File], timeout: float = ENGINE_WAIT) -> bool:
    """Write each file whose content differs; restart the engine if any did (waiting up to
    ``timeout`` for it to answer again)."""
    changed = [f for f in files if _digest(read_file(host, f.path)) != _digest(f.content.decode())]
    for file in changed:
        check(host, f"mkdir -p {shlex.quote(file.path.rsplit('/', 1)[0])}")
        host.put(file.content, file.path, file.mode)
    if changed:
        restart_engine(host, timeout)
    return bool(changed)


def restart_engine(host: Host, timeout: float = ENGINE_WAIT) -> None:
    check(host, RESTART, hint=f"look at /var/log/dockerd.log on the node ({hints.command('lab.ssh', 'NODE')})")
    wait_for_engine(host, timeout)


def wait_for_engine(host: Host, timeout: float = ENGINE_WAIT) -> None:
    """Until the engine on ``host`` answers ``docker version`` (callers scale ``timeout`` by the
    lab's pace: an emulated VM on a busy machine takes minutes to start dockerd)."""
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
