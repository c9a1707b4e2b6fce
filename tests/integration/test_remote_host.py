"""A lab wholly on a second Docker host reachable only over SSH (the docker SDK's ``ssh://``
transport, its host key checked against known_hosts): the host is a container on the default
bridge made from the node image, running sshd and dockerd (its nodes are containers in its
engine: nested one level deeper, with the runtime profile the docker provider detects). The
issue asks for a VM as that host; a container is the faster first step taken here.

lab.up copies the node image there (docker save | load), the lab is reached through its host's
engine (the tunnel: provision/remote/reach.py, tunnel.py), lab.ssh and lab.env work from here,
and lab.down leaves nothing on the host, nor a tunnel here. Then a class over a hosts inventory
(class.up --hosts) puts one lab here and one there, and class.down cleans both hosts."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import docker
import pytest

from provision import state
from provision.images.node import node_image_tag
from provision.paths import TEMPLATES
from provision.providers.docker.node_container import tar_of
from provision.providers.docker.runtime_profile import profile_for
from provision.remote import keys, reach
from provision.remote.node_files import File
from provision.wait import NotYet, wait_until
from tests.labs import CREATED, cli

pytestmark = pytest.mark.integration
# every engine call of the docker SDK over ssh:// is one SSH session: lab.up makes nodes in
# parallel, more than sshd's default 10 per connection
SSHD_EXTRA = b"MaxSessions 100\nMaxStartups 100:30:200\n"


@pytest.fixture(scope="module")
def remote_host(engine, tmp_path_factory):
    """(ssh:// URL, HOME holding the client key and the host's key in .ssh/known_hosts)."""
    home = tmp_path_factory.mktemp("remote-home")
    client_key = keys.ensure_keypair(home / ".ssh" / "id_ed25519", "swarmdeck-test")
    host_key = keys.ensure_keypair(home / "host_key", "remote-host")
    image = node_image_tag()
    engine.images.get(image)
    profile = profile_for(engine, image)
    name = f"it-remote-host-{uuid.uuid4().hex[:4]}"
    created = engine.api.create_container(
        image, name=name, hostname=name, detach=True, labels={"io.swarmdeck.kind": "test-host"},
        host_config=profile.host_config(engine.api, None, network_mode="bridge"))
    container = engine.containers.get(created["Id"])
    try:
        container.put_archive("/", tar_of([
            File("/root/.ssh/authorized_keys", client_key.public_line.encode() + b"\n", 0o600),
            File("/etc/ssh/ssh_host_ed25519_key", host_key.private_path.read_bytes(), 0o600),
            File("/etc/docker/daemon.json", b'{"hosts": ["unix:///var/run/docker.sock"]}\n', 0o644),
            File("/etc/ssh/sshd_config", (TEMPLATES / "node" / "sshd_config").read_bytes() + SSHD_EXTRA, 0o644),
        ]))
        container.start()
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        (home / ".ssh" / "known_hosts").write_text(f"{address} {' '.join(host_key.public_line.split()[:2])}\n")
        url = f"ssh://root@{address}"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HOME", str(home))

            def answers() -> bool:
                try:
                    return docker.DockerClient(base_url=url, use_ssh_client=False, timeout=10).ping()
                except Exception as err:  # sshd or dockerd still starting
                    raise NotYet(str(err)) from err

            wait_until(answers, timeout=60, interval=0.5, describe=f"the engine of {name} over SSH")
            yield url, home, container
    finally:
        container.remove(force=True, v=True)


def lab_env(lab: str) -> dict[str, str]:
    """This environment with what ``lab.env manager1`` exports for ``lab``."""
    environment = dict(os.environ)
    for line in cli("lab.env", "manager1", "--lab", lab, "--shell", "bash").stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            environment[key] = value.strip('"')
    return environment


def test_a_lab_on_a_host_reached_only_over_ssh(engine, remote_host):
    url, home, host = remote_host
    lab = f"it-remote-{uuid.uuid4().hex[:4]}"
    CREATED.add(lab)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("SWARMDECK_DOCKER_HOST", url)
        try:
            cli("lab.up", "--lab", lab, "--managers", "1", "--workers", "1", "--no-registry")
        finally:
            patch.delenv("SWARMDECK_DOCKER_HOST")
        assert state.read_engine(lab) == {"DOCKER_HOST": url} and state.read_route(lab) == reach.TUNNEL
        assert engine.containers.list(filters={"label": f"io.swarmdeck.lab={lab}"}) == []  # nothing here

        status = json.loads(cli("lab.status", "--lab", lab, "--json").stdout)  # the recorded engine: no override
        assert status["state"] == "running" and sorted(n["name"] for n in status["nodes"]) == ["manager1", "worker1"]
        assert cli("lab.ssh", "manager1", "--lab", lab, "--command", "hostname").stdout.strip() == "manager1"
        environment = lab_env(lab)
        assert environment["DOCKER_HOST"].startswith("tcp://127.0.0.1:")
        listed = subprocess.run(["docker", "node", "ls", "--format", "{{.Hostname}} {{.Status}}"], env=environment,
                                capture_output=True, text=True, timeout=60, check=True).stdout.split()
        assert listed == ["manager1", "Ready", "worker1", "Ready"]
        tunnel = state.read_tunnel(lab)

        cli("lab.down", "--lab", lab)
        assert not reach.alive(lab, tunnel)
        left = host.exec_run(["sh", "-c", "docker ps -aq; docker volume ls -q; docker network ls -q --filter label=io.swarmdeck.lab"])
        assert left.exit_code == 0 and left.output.split() == [], left.output


def test_a_class_across_the_local_engine_and_the_ssh_host(engine, remote_host, tmp_path):
    """class.up --hosts: two labs, one on each host (each host's capacity holds one), both Ready,
    reached from here with lab.ssh and lab.env, each door on its own host; class.down cleans both."""
    url, home, host = remote_host
    name = f"it-mh-{uuid.uuid4().hex[:4]}"
    local_lab, remote_lab = f"{name}-s01", f"{name}-s02"
    CREATED.update([local_lab, remote_lab])
    spec = tmp_path / "lab.yaml"
    spec.write_text("managers: 1\nworkers: 1\nregistry:\n  enabled: false\n")
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(f"hosts:\n  - name: local\n    capacity: 1g\n  - name: far\n    docker_host: {url}\n"
                         "    capacity: 1g\n")
    remote_address = url.rpartition("@")[2]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))  # the ssh:// transport's key and known_hosts
        try:
            cli("class.up", "--students", "2", "--class", name, "--spec", str(spec), "--hosts", str(inventory),
                "--address", "127.0.0.1", timeout=900)
            rows = {row["lab"]: row for row in json.loads(cli("class.status", "--class", name, "--json").stdout)["labs"]}
            assert {lab: row["host"] for lab, row in rows.items()} == {local_lab: "local", remote_lab: "far"}
            assert all(row["nodes_ready"] == row["nodes_total"] == 2 for row in rows.values()), rows
            assert rows[local_lab]["door"].startswith("127.0.0.1:") and rows[remote_lab]["door"].startswith(remote_address)
            assert state.read_engine(remote_lab) == {"DOCKER_HOST": url} and state.read_route(remote_lab) == reach.TUNNEL
            on_host = host.exec_run(["docker", "ps", "--format", "{{.Names}}"]).output.decode().split()
            assert any(n.startswith(remote_lab) for n in on_host) and not any(n.startswith(local_lab) for n in on_host)
            for lab in (local_lab, remote_lab):
                assert cli("lab.ssh", "manager1", "--lab", lab, "--command", "hostname").stdout.strip() == "manager1"
                environment = lab_env(lab)
                listed = subprocess.run(["docker", "node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
                                        env=environment, capture_output=True, text=True, timeout=60, check=True)
                assert listed.stdout.split() == ["manager1", "Ready", "worker1", "Ready"], lab
        finally:
            cli("class.down", "--class", name, check=False)
    left = host.exec_run(["sh", "-c", "docker ps -aq; docker volume ls -q; docker network ls -q --filter label=io.swarmdeck.lab"])
    assert left.exit_code == 0 and left.output.split() == [], left.output
    assert engine.containers.list(all=True, filters={"label": f"io.swarmdeck.lab={local_lab}"}) == []
    assert not (Path(os.environ["SWARMDECK_HOME"]) / "classes" / name).exists()
