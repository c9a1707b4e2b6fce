"""How this machine reaches a lab's nodes: straight over the lab network, or through a tunnel.

A lab network is routable from the machine that runs the engine (Linux, rootful Docker): then
SSH and the node engines' TLS API go straight to the nodes' addresses. It is not routable from
Docker Desktop's host (macOS, Windows: the engine runs in a VM), from rootless Docker (the
networks live in the rootlesskit namespace), from a container on the default bridge, nor from
anywhere but the host itself when the engine is remote (``ssh://``). Then every connection to a
node's port goes through the lab's tunnel process (``provision.remote.tunnel``): a local port on
127.0.0.1 per node port, each connection relayed through the engine that hosts the lab.

The route is detected, not configured: the first time a lab's node is reached, the lab network's
Linux bridge is looked for among this machine's interfaces (found: this is the engine's own host,
and the lab network is routed here, whether or not the node answers yet); failing that, the node's
address is tried (only an answer is a route: a refusal may come from a firewall on the way). The
answer is recorded in the lab's state folder (``route``). A remote engine is always reached through the tunnel: its lab subnets may equal
local ones.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker.errors
import requests

from provision import state
from provision.errors import HostUnreachable, ProviderUnavailable
from provision.paths import lab_dir
from provision.providers.docker import names

DIRECT, TUNNEL = "direct", "tunnel"
PROBE_SECONDS = 2.0  # a routable lab network answers (or refuses) within milliseconds
REFUSED_PATIENCE = 15.0  # how long a refused node port is tried again before the tunnel is chosen
ANSWERED, REFUSED, SILENT = "answered", "refused", "silent"
START_SECONDS = 15.0
TUNNELED_PROVIDERS = ("docker",)  # the tunnel relays through the engine: container nodes only
LOCAL_SCHEMES = ("unix://", "npipe://", "fd://")
MODULE = "provision.remote.tunnel"


def probe(address: str, port: int, timeout: float = PROBE_SECONDS) -> str:
    """What a TCP connection to ``address:port`` meets: ANSWERED (connected), REFUSED (a reset:
    the node's port is closed, or a firewall on the way rejects), or SILENT (a timeout, an
    unreachable network: no route)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return ANSWERED
    except OSError as err:
        if isinstance(err, ConnectionRefusedError) or err.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
            return REFUSED
        return SILENT


def routable(address: str, port: int, *, patience: float = REFUSED_PATIENCE) -> bool:
    """Whether the lab network is routable from here: ``address:port`` answers. A refusal is
    tried again for ``patience`` seconds (a node's sshd may still be starting), then taken as
    no route: a firewall that rejects is no route either, and the tunnel works in every case."""
    deadline = time.monotonic() + patience
    while True:
        found = probe(address, port)
        if found != REFUSED or time.monotonic() >= deadline:
            return found == ANSWERED
        time.sleep(0.2)


def engine_is_remote(settings: dict[str, str] | None) -> bool:
    """Whether the recorded engine settings name an engine on another machine."""
    host = (settings or {}).get("DOCKER_HOST", "")
    return bool(host) and not host.startswith(LOCAL_SCHEMES)


def route(lab: str, address: str, port: int) -> str:
    """How this machine reaches ``lab``: recorded, else detected by trying ``address:port``."""
    if not state.exists(lab) or state.read_provider(lab) not in TUNNELED_PROVIDERS:
        return DIRECT  # no lab of this machine's (hosts being adopted), or machines with their own routes
    recorded = state.read_route(lab)
    if recorded in (DIRECT, TUNNEL):
        return recorded
    if engine_is_remote(state.read_engine(lab)):
        found = TUNNEL
    else:
        found = DIRECT if bridge_here(lab) or routable(address, port) else TUNNEL
    state.write_route(lab, found)
    return found


def bridge_here(lab: str) -> bool:
    """Whether the Linux bridge of ``lab``'s network is an interface of this machine: then this
    machine is the engine's host and routes the lab network, without waiting for a node to answer
    (a node's sshd may still be starting on a loaded machine). Docker Desktop's host, rootless
    Docker and a container beside the engine have no such interface."""
    # imported here: engine_clients uses this module for the nodes' clients
    from provision.remote import engine_clients

    try:
        client = engine_clients.host_client(lab, timeout=10)
    except ProviderUnavailable:
        return False
    try:
        network = client.networks.get(names.network_name(lab))
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False
    finally:
        client.close()
    options = network.attrs.get("Options") or {}
    bridge = options.get("com.docker.network.bridge.name") or f"br-{network.id[:12]}"
    return bridge in interfaces_here()


def interfaces_here() -> set[str]:
    """The network interfaces of this process's network namespace (``/proc/self/net/dev``: per
    process, unlike ``/sys/class/net``, which shows the namespace of whoever mounted it; empty
    where there is no /proc, as on macOS)."""
    try:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    except OSError:
        return set()
    return {line.split(":", 1)[0].strip() for line in lines if ":" in line}


def endpoint(lab: str, address: str, port: int) -> tuple[str, int]:
    """Where to connect on this machine to reach ``address:port`` of ``lab``'s network."""
    if route(lab, address, port) == DIRECT:
        return address, port
    return "127.0.0.1", forwarded_port(lab, address, port)


def target_key(address: str, port: int) -> str:
    return f"{address}:{port}"


def forwarded_port(lab: str, address: str, port: int) -> int:
    """The local port of the lab's tunnel that reaches ``address:port``: the target is added to
    those the running tunnel process serves (it picks them up while it runs), or the process is
    started when none runs."""
    key = target_key(address, port)
    record = state.read_tunnel(lab)
    if record and alive(lab, record) and key in record.get("ports", {}):
        return int(record["ports"][key])
    with state.tunnel_lock(lab):
        asked = state.read_tunnel_targets(lab)
        targets = sorted({*asked.get("targets", []), key})
        record = state.read_tunnel(lab)
        state.write_tunnel_targets(lab, {"targets": targets, "wanted": (record or {}).get("ports", {})})
        if record and alive(lab, record):
            record = wait_for_ports(lab, record["pid"], [key], lambda: alive(lab, record))
        else:
            record = start(lab, targets)
    return int(record["ports"][key])


def start(lab: str, targets: list[str]) -> dict:
    """Start the lab's tunnel process (the targets are written already) and wait until it
    has recorded the ports of ``targets``."""
    state.remove_tunnel_record(lab)
    log = open(lab_dir(lab) / "tunnel.log", "ab")
    with log:
        process = subprocess.Popen(
            [sys.executable, "-m", MODULE, lab], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, cwd="/", env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )
    try:
        return wait_for_ports(lab, process.pid, targets, lambda: process.poll() is None)
    except HostUnreachable:
        process.kill()
        raise


def wait_for_ports(lab: str, pid: int, targets: list[str], running) -> dict:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and running():
        record = state.read_tunnel(lab) or {}
        if record.get("pid") == pid and set(record.get("ports", {})) >= set(targets):
            return record
        time.sleep(0.02)
    raise HostUnreachable(f"the tunnel to lab {lab}'s network does not serve {', '.join(targets)}",
                          hint=f"see {lab_dir(lab) / 'tunnel.log'}")


def alive(lab: str, record: dict | None) -> bool:
    """Whether the recorded tunnel process runs (checked by its command line, never by pid alone:
    a pid is reused once its process is gone)."""
    pid = (record or {}).get("pid")
    if not isinstance(pid, int):
        return False
    return [MODULE, lab] == command_line(pid)[-2:]


def command_line(pid: int) -> list[str]:
    """The words of process ``pid``'s command line (empty: no such process)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():
        try:
            return [w.decode(errors="replace") for w in proc.read_bytes().split(b"\0") if w]
        except OSError:
            return []
    found = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return found.stdout.split()  # macOS: no /proc


def stop_process(lab: str, record: dict | None) -> bool:
    if not alive(lab, record):
        return False
    pid = record["pid"]
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return False
    for _ in range(100):
        if not alive(lab, record):
            break
        time.sleep(0.02)
    return True


def stop(lab: str) -> bool:
    """Stop ``lab``'s tunnel process (``lab.down``); True when one ran."""
    if state.read_tunnel(lab) is None and not state.read_tunnel_targets(lab):
        return False  # never tunneled (and no tunnel lock made: a lab that never existed leaves nothing)
    with state.tunnel_lock(lab):
        stopped = stop_process(lab, state.read_tunnel(lab))
        state.remove_tunnel(lab)
    return stopped


def connect(lab: str, address: str, port: int, timeout: float | None = None) -> socket.socket:
    """A connected socket to ``address:port`` of ``lab``'s network, by its route."""
    host, local_port = endpoint(lab, address, port)
    return socket.create_connection((host, local_port), timeout=timeout)
