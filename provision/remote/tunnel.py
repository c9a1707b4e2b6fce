"""A lab's tunnel process: local ports on 127.0.0.1 relayed to node ports through the lab's engine.

``python -m provision.remote.tunnel LAB`` reads its targets (``ADDRESS:PORT``) from the lab's
``tunnel-targets.json`` (again and again: targets are added while it runs), listens on one loopback port per target (the port it had before when free),
records them with its pid in ``tunnel.json``, and serves until stopped (``lab.down``, or a restart with more
targets). Each accepted connection becomes one ``exec`` in a running node container of the lab:
``busybox nc ADDRESS PORT``, its stdin and stdout the connection's two directions. That works
over every transport of the docker SDK (the local socket, ``ssh://``, TLS): the engine is the
only thing this machine must reach. What goes through is end-to-end: SSH still checks the node's
host key, TLS still verifies the engine's certificate (valid for 127.0.0.1 too) and the client's.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import sys
import threading

import docker

from provision import state
from provision.providers.docker import names
from provision.remote import engine_clients

log = logging.getLogger("swarmdeck.tunnel")
HEADER = struct.Struct(">BxxxL")  # the engine's stream frames without a TTY: stream id, length
STDOUT = 1
CHUNK = 65536
POLL_SECONDS = 0.05  # how soon a target added to the record is served


def relay_command(address: str, port: int) -> list[str]:
    return ["busybox", "nc", address, str(port)]


def read_exact(sock, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return data
        data += chunk
    return data


def half_close(end) -> None:
    """No more data from this side (the other may still answer)."""
    try:
        end.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def pump_frames(source, sink: socket.socket) -> None:
    """Copy the stdout frames the engine sends on ``source`` to ``sink`` until it ends."""
    try:
        while True:
            header = read_exact(source, HEADER.size)
            if len(header) < HEADER.size:
                break
            stream, length = HEADER.unpack(header)
            payload = read_exact(source, length)
            if stream == STDOUT:
                sink.sendall(payload)
            if len(payload) < length:
                break
    except OSError:
        pass
    finally:
        half_close(sink)


def pump_raw(source: socket.socket, sink) -> None:
    """Copy ``source`` to the exec's stdin on ``sink``; at its end, close the exec's stdin."""
    try:
        while True:
            data = source.recv(CHUNK)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        half_close(sink)


def raw_socket(hijacked):
    """The bidirectional socket under what ``exec_start(socket=True)`` returns."""
    return getattr(hijacked, "_sock", hijacked)


class Relay:
    """Connections to ``address:port`` on the lab network, made through the lab's engine."""

    def __init__(self, lab: str):
        self.lab = lab
        self.client = engine_clients.host_client(lab)

    def via(self, address: str) -> str:
        """A running container of the lab to relay from: the node at ``address`` when it runs,
        else any running node of the lab (they share the lab network)."""
        running = self.client.containers.list(filters=names.lab_filter(self.lab, "node"))
        network = names.network_name(self.lab)
        for container in running:
            networks = container.attrs.get("NetworkSettings", {}).get("Networks", {})
            if networks.get(network, {}).get("IPAddress") == address:
                return container.id
        if not running:
            raise OSError(f"no node of lab {self.lab} runs: nothing to relay through")
        return running[0].id

    def open(self, address: str, port: int):
        api = self.client.api
        execution = api.exec_create(self.via(address), relay_command(address, port), stdin=True, stdout=True,
                                    stderr=False, tty=False)
        return raw_socket(api.exec_start(execution["Id"], socket=True))

    def serve_one(self, connection: socket.socket, address: str, port: int) -> None:
        try:
            upstream = self.open(address, port)
        except (docker.errors.DockerException, OSError) as err:
            log.warning("relay to %s:%s failed: %s", address, port, err)
            connection.close()
            return
        back = threading.Thread(target=pump_frames, args=(upstream, connection), daemon=True)
        back.start()
        pump_raw(connection, upstream)
        back.join()
        for end in (connection, upstream):
            try:
                end.close()
            except OSError:
                pass


def listen(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (any free port when 0 or when it is taken)."""
    for wanted in (port, 0) if port else (0,):
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", wanted))
        except OSError:
            server.close()
            continue
        server.listen(64)
        return server
    raise OSError("no free port on 127.0.0.1")


def accept_loop(relay: Relay, server: socket.socket, address: str, port: int) -> None:
    while True:
        connection, _ = server.accept()
        threading.Thread(target=relay.serve_one, args=(connection, address, port), daemon=True).start()


def serve_new_targets(lab: str, relay: Relay, servers: dict[str, socket.socket]) -> dict:
    """Listen for every target asked for and not served yet; record the ports."""
    asked = state.read_tunnel_targets(lab)
    wanted = asked.get("wanted", {})
    new = [key for key in asked.get("targets", []) if key not in servers]
    for key in new:
        servers[key] = listen(int(wanted.get(key, 0)))
        address, _, port = key.rpartition(":")
        threading.Thread(target=accept_loop, args=(relay, servers[key], address, int(port)), daemon=True).start()
    if new or (state.read_tunnel(lab) or {}).get("pid") != os.getpid():
        ports = {key: server.getsockname()[1] for key, server in servers.items()}
        state.write_tunnel(lab, {"pid": os.getpid(), "ports": ports})
        log.info("tunnel of lab %s: %s", lab, ", ".join(f"127.0.0.1:{p} -> {k}" for k, p in ports.items()))
    return asked


def main(lab: str) -> int:
    """Serve the record's targets, and those added to it later (``reach.forwarded_port`` adds
    them while this process runs: connections already relayed are never cut for a new one)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    relay = Relay(lab)
    servers: dict[str, socket.socket] = {}
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    while not stopped.wait(POLL_SECONDS):
        serve_new_targets(lab, relay, servers)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
