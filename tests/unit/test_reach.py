"""How a lab's nodes are reached (provision/remote/reach.py, tunnel.py): the route detected per
lab, the relay's stream frames, lab.ssh through a tunnel, and host keys checked on every path
(through the tunnel as the node's own address; the docker SDK's ssh:// transport)."""

from __future__ import annotations

import os
import socket
import struct
import threading

import docker
import docker.errors
import paramiko
import pytest

from orchestrator import access
from provision import state
from provision.errors import HostUnreachable
from provision.providers.base import SSHTarget
from provision.remote import keys, reach, tunnel
from provision.remote.host import SSHHost, TunneledConnection


def test_only_an_answer_is_a_route():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert reach.probe("127.0.0.1", server.getsockname()[1]) == reach.ANSWERED
        assert reach.routable("127.0.0.1", server.getsockname()[1])
        free = server.getsockname()[1]
    assert reach.probe("127.0.0.1", free) == reach.REFUSED
    assert not reach.routable("127.0.0.1", free, patience=0.3)  # refused for good: a firewall, or nothing there
    # TEST-NET-1: no answer (silent where nothing routes it, refused behind a rejecting firewall)
    assert reach.probe("192.0.2.1", 22, timeout=0.3) in (reach.SILENT, reach.REFUSED)


def test_a_port_refused_at_first_then_answering_is_a_route(monkeypatch):
    answers = iter([reach.REFUSED, reach.REFUSED, reach.ANSWERED])
    monkeypatch.setattr(reach, "probe", lambda *_: next(answers))
    monkeypatch.setattr(reach.time, "sleep", lambda _: None)
    assert reach.routable("10.0.0.10", 22)  # a node's sshd still starting


def a_lab(name: str, provider: str = "docker", engine: dict | None = None) -> str:
    state.write_provider(name, provider)
    if engine is not None:
        state.write_engine(name, engine)
    return name


def test_the_route_is_detected_once_and_recorded(monkeypatch):
    probes = []
    monkeypatch.setattr(reach, "bridge_here", lambda lab: False)
    monkeypatch.setattr(reach, "routable", lambda address, port: probes.append((address, port)) or False)
    lab = a_lab("t1", engine={})
    assert reach.route(lab, "10.0.0.10", 22) == reach.TUNNEL
    assert reach.route(lab, "10.0.0.11", 22) == reach.TUNNEL
    assert probes == [("10.0.0.10", 22)] and state.read_route(lab) == reach.TUNNEL


def test_a_remote_engine_always_tunnels_and_other_providers_never(monkeypatch):
    monkeypatch.setattr(reach, "routable", lambda *_: pytest.fail("no probe: the answer is known"))
    assert reach.route(a_lab("far", engine={"DOCKER_HOST": "ssh://lab@class-host"}), "10.0.0.10", 22) == reach.TUNNEL
    assert reach.route(a_lab("hosts", provider="ssh"), "192.168.1.5", 22) == reach.DIRECT
    assert not reach.engine_is_remote({"DOCKER_HOST": "unix:///var/run/docker.sock"})
    assert not reach.engine_is_remote({})


def test_the_labs_bridge_on_this_machine_is_a_route_without_a_probe(monkeypatch):
    monkeypatch.setattr(reach, "bridge_here", lambda lab: True)
    monkeypatch.setattr(reach, "routable", lambda *_: pytest.fail("no probe: this machine holds the lab's bridge"))
    assert reach.route(a_lab("here", engine={}), "10.0.0.10", 22) == reach.DIRECT


def test_a_lab_network_missing_here_is_no_bridge(monkeypatch):
    class Networks:
        def get(self, name):
            raise docker.errors.NotFound(f"network {name} not found")

    class Client:
        networks = Networks()

        def close(self):
            pass

    monkeypatch.setattr("provision.remote.engine_clients.host_client", lambda lab, timeout: Client())
    assert not reach.bridge_here(a_lab("gone", engine={}))


def test_this_processs_interfaces_are_read_from_its_own_namespace():
    assert "lo" in reach.interfaces_here()


def test_a_direct_route_keeps_the_node_address(monkeypatch):
    monkeypatch.setattr(reach, "bridge_here", lambda lab: False)
    monkeypatch.setattr(reach, "routable", lambda *_: True)
    lab = a_lab("t2", engine={})
    assert reach.endpoint(lab, "10.0.0.10", 2376) == ("10.0.0.10", 2376)
    assert access.ssh_argv(lab, "10.0.0.10")[-1] == "root@10.0.0.10"


def test_lab_ssh_through_a_tunnel_checks_the_host_key_as_the_nodes(monkeypatch):
    monkeypatch.setattr(reach, "endpoint", lambda lab, address, port: ("127.0.0.1", 40022))
    argv = access.ssh_argv("t3", "10.0.0.10", "hostname")
    assert argv[-2:] == ["root@127.0.0.1", "hostname"]
    assert "HostKeyAlias=10.0.0.10" in argv and "Port=40022" in argv and "StrictHostKeyChecking=yes" in argv
    assert access.docker_host("t3", "10.0.0.10") == "tcp://127.0.0.1:40022"


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_the_relay_passes_stdout_frames_only_and_ends_with_the_stream():
    engine_side, relay_in = socket.socketpair()
    relay_out, client = socket.socketpair()
    engine_side.sendall(frame(1, b"SSH-2.0-") + frame(2, b"nc: noise") + frame(1, b"OpenSSH\r\n"))
    engine_side.shutdown(socket.SHUT_WR)
    tunnel.pump_frames(relay_in, relay_out)
    received = b""
    while chunk := client.recv(100):
        received += chunk
    assert received == b"SSH-2.0-OpenSSH\r\n"  # and then EOF: the relay half-closed the client


def test_a_tunnel_process_is_known_by_its_command_line_not_its_pid_alone():
    assert not reach.alive("t4", {"pid": os.getpid()})  # a live pid, but not a tunnel of t4
    assert not reach.alive("t4", {"pid": None}) and not reach.alive("t4", None)


class SSHServer(paramiko.ServerInterface):
    def get_allowed_auths(self, username):
        return "publickey"


@pytest.fixture
def sshd():
    """An SSH server on 127.0.0.1 (host key only: it lets nobody in); its port and key."""
    host_key = paramiko.Ed25519Key.from_private_key_file(str(keys.host_key("server", "node").private_path))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(connection)
            transport.add_server_key(host_key)
            try:
                transport.start_server(server=SSHServer())
            except (paramiko.SSHException, EOFError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], keys.host_key("server", "node").public_line
    listener.close()


def a_known_hosts(lab: str, public_line: str) -> None:
    keys.write_known_hosts(lab, {"manager1": ("10.0.0.10", public_line)})


def cause_of(host: SSHHost) -> BaseException:
    with pytest.raises(HostUnreachable) as failure:
        host.run("true")
    return failure.value.__cause__


def test_through_the_tunnel_a_node_with_another_host_key_is_refused(sshd, monkeypatch):
    port, public_line = sshd
    monkeypatch.setattr(reach, "endpoint", lambda lab, address, p: ("127.0.0.1", port))
    a_known_hosts("right", public_line)
    host = SSHHost("right", "manager1", SSHTarget("10.0.0.10"), connect_timeout=5)
    assert isinstance(host.connection, TunneledConnection)
    assert isinstance(cause_of(host), paramiko.AuthenticationException)  # key matched: on to login
    a_known_hosts("wrong", keys.host_key("wrong", "other").public_line)
    assert isinstance(cause_of(SSHHost("wrong", "manager1", SSHTarget("10.0.0.10"), connect_timeout=5)),
                      paramiko.BadHostKeyException)
    keys.write_known_hosts("unknown", {})
    refused = cause_of(SSHHost("unknown", "manager1", SSHTarget("10.0.0.10"), connect_timeout=5))
    assert isinstance(refused, paramiko.SSHException) and "not found in known_hosts" in str(refused)


def test_the_docker_sdks_ssh_transport_refuses_an_unknown_host_key(sshd, monkeypatch, tmp_path):
    """ssh:// engines (remote hosts) go through the SDK's paramiko transport, which checks
    ~/.ssh/known_hosts with paramiko's RejectPolicy: an unknown host is never accepted."""
    port, _ = sshd
    monkeypatch.setenv("HOME", str(tmp_path))  # no known_hosts, no ssh config
    with pytest.raises((paramiko.SSHException, docker.errors.DockerException)) as failure:
        docker.DockerClient(base_url=f"ssh://root@127.0.0.1:{port}", use_ssh_client=False, timeout=5)
    assert "not found in known_hosts" in str(failure.value)


def test_a_libvirt_lab_keeps_the_uri_it_was_made_with(monkeypatch):
    """qemu+ssh:// per lab: recorded by lab.up, used by every later command without the variable."""
    from provision import inventory
    from provision.providers.libvirt.provider import LibvirtProvider
    from provision.spec import model as specs
    monkeypatch.setenv("SWARMDECK_LIBVIRT_URI", "qemu+ssh://root@vm-host/system")
    inventory.record_provider(specs.LabSpec(name="far", provider="libvirt", nodes=()))
    monkeypatch.delenv("SWARMDECK_LIBVIRT_URI")
    assert LibvirtProvider(lab="far").uri == "qemu+ssh://root@vm-host/system"
    assert LibvirtProvider(lab="other").uri == "qemu:///system"
    assert reach.route("far", "10.0.0.10", 22) == reach.DIRECT  # VMs: by their addresses


def test_stopping_the_tunnel_of_a_lab_that_never_had_one_leaves_nothing():
    lab = a_lab("plain", engine={})
    before = sorted(p.name for p in (state.lab_dir(lab)).iterdir())
    assert reach.stop(lab) is False
    assert sorted(p.name for p in state.lab_dir(lab).iterdir()) == before  # no tunnel.lock made
