"""Start and stop a lab's visualizer as a background process; find its URL.

The process is recorded in the lab's state folder (``viz.json``: pid, address, URL)
and logs to ``viz.log`` there. ``viz.up`` is safe to re-run; ``lab.down`` stops it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from provision import hints, inventory
from provision.errors import LabError
from provision.paths import REPO, lab_dir
from provision.remote import direct_http
from provision.wait import NotYet, wait_until

START_TIMEOUT = 20


@dataclass(frozen=True)
class Viz:
    pid: int
    host: str
    port: int

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{shown}:{self.port}/"


def record_path(lab: str) -> Path:
    return lab_dir(lab) / "viz.json"


def running(lab: str) -> Viz | None:
    """The lab's visualizer when its process is alive (a stale record is removed)."""
    path = record_path(lab)
    try:
        viz = Viz(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if _alive(viz.pid):
        return viz
    path.unlink(missing_ok=True)
    return None


DEFAULT_PORT = 8000
PORTS_TRIED = 20  # without --port: the first free one of 8000-8019 (another lab's visualizer may hold 8000)


def up(lab: str, port: int | None = None, host: str = "127.0.0.1") -> tuple[Viz, bool]:
    """Start the visualizer of ``lab`` unless it runs; (viz, started). Without ``port``,
    the first free port from 8000 on."""
    inventory.existing_lab(lab)  # a clear error for an unknown lab, before any process starts
    current = running(lab)
    if current is not None:
        if (port is not None and current.port != port) or current.host != host:
            raise LabError(f"the visualizer of lab {lab} runs already at {current.url}",
                           hint=f"{hints.command('viz.down', lab=lab)} first to move it")
        return current, False
    port = port if port is not None else free_port(host)
    log = lab_dir(lab) / "viz.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.viz.server", "--lab", lab, "--host", host, "--port", str(port)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    viz = Viz(process.pid, host, port)

    def answers() -> bool:
        if process.poll() is not None:
            raise LabError(f"the visualizer exited at start (code {process.returncode}): {_tail(log)}",
                           hint=f"is port {port} taken? try {hints.command('viz.up', '--port', str(port + 1), lab=lab)}")
        try:
            return json.loads(direct_http.get(viz.url + "api/state", 2)).get("lab") == lab
        except Exception as err:  # noqa: BLE001 - not answering yet, whatever the reason
            raise NotYet(str(err)) from err

    wait_until(answers, timeout=START_TIMEOUT, interval=0.2, describe=f"the visualizer at {viz.url}")
    record_path(lab).write_text(json.dumps({"pid": viz.pid, "host": host, "port": port}))
    return viz, True


def free_port(host: str) -> int:
    """The first port from DEFAULT_PORT on that nothing listens on at ``host``."""
    for port in range(DEFAULT_PORT, DEFAULT_PORT + PORTS_TRIED):
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
                return port
            except OSError:
                continue
    raise LabError(f"ports {DEFAULT_PORT}-{DEFAULT_PORT + PORTS_TRIED - 1} are all taken on {host}",
                   hint=f"name a free one: {hints.command('viz.up', '--port', 'PORT')}")


def down(lab: str) -> bool:
    """Stop the visualizer of ``lab``; False when none ran."""
    viz = running(lab)
    if viz is None:
        return False
    os.kill(viz.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _alive(viz.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(viz.pid):
        os.kill(viz.pid, signal.SIGKILL)
    record_path(lab).unlink(missing_ok=True)
    return True


def url(lab: str) -> str | None:
    viz = running(lab)
    return viz.url if viz else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process counts as gone
        finished, _ = os.waitpid(pid, os.WNOHANG)
        return finished == 0
    except ChildProcessError:
        return True


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
