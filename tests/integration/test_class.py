"""A class on the local engine: 3 labs of 3 managers + 1 worker made by class.up, its status and
cards, a runaway memory and fork hog in one lab contained by that lab's node limits, one lab
broken three ways and put back by class.reset while the other two are untouched, and class.down
removing the class and nothing else. About 4-5 minutes here (class.up of the 3 labs in parallel
is 1.5-2 minutes of it)."""

from __future__ import annotations

import base64
import json
import os
import re
import time
import uuid
from html.parser import HTMLParser
from pathlib import Path

import docker
import paramiko
import pytest

from provision.providers.docker import names as labels
from provision.remote.engine_clients import node_client
from tests.labs import CREATED, cli, lab_resources, status_json, swarm_nodes

pytestmark = pytest.mark.integration

STUDENTS = 3
TEMPLATE = "managers: 3\nworkers: 1\n"


@pytest.fixture(scope="module")
def a_class(engine, tmp_path_factory):
    name = f"it-cls-{uuid.uuid4().hex[:4]}"
    lab_names = [f"{name}-s0{i}" for i in range(1, STUDENTS + 1)]
    CREATED.update(lab_names)  # the session's sweep removes them even when this module fails
    spec = tmp_path_factory.mktemp("class") / "lab.yaml"
    spec.write_text(TEMPLATE)
    others = _other_resources(engine, lab_names)
    started = time.monotonic()
    result = cli("class.up", "--students", str(STUDENTS), "--class", name, "--spec", str(spec), "--address",
                 "127.0.0.1", timeout=900)
    up_seconds = time.monotonic() - started
    yield {"name": name, "labs": lab_names, "spec": spec, "up": result, "up_seconds": up_seconds, "others": others}
    cli("class.down", "--class", name, check=False)


def _other_resources(client, mine: list[str]) -> set[str]:
    found = set()
    for kind in ("containers", "networks", "volumes"):
        collection = getattr(client, kind)
        items = collection.list(all=True) if kind == "containers" else collection.list()
        for item in items:
            lab = (item.attrs.get("Labels") or item.attrs.get("Config", {}).get("Labels") or {}).get(labels.LAB, "")
            if lab and lab not in mine and not lab.startswith("it-"):  # others' labs, not this session's
                found.add(f"{kind} {item.name}")
    return found


def _node_ids(lab: str) -> dict[str, str]:
    return {host: attrs["ID"] for host, attrs in swarm_nodes(lab).items()}


def _services(lab: str) -> list[str]:
    client = _manager(lab)
    try:
        return sorted(s.name for s in client.services.list())
    finally:
        client.close()


def _manager(lab: str):
    leader = next(n for n in status_json(lab)["nodes"] if n["leader"])
    return node_client(lab, leader["address"])


def _home() -> Path:
    return Path(os.environ["SWARMDECK_HOME"])


def test_class_up_makes_every_lab_ready_with_limits(a_class, engine):
    out = a_class["up"].stdout + a_class["up"].stderr
    assert f"{STUDENTS} of {STUDENTS} labs ready" in out
    for lab in a_class["labs"]:
        status = status_json(lab)
        assert [n["state"] for n in status["nodes"]] == ["ready"] * 4, status
        node = engine.containers.get(f"{lab}-worker1")
        assert node.attrs["HostConfig"]["Memory"] == 192 << 20 and node.attrs["HostConfig"]["PidsLimit"] == 1024
        assert node.attrs["HostConfig"]["NanoCpus"] == 1_000_000_000
        assert engine.containers.get(f"{lab}-door").status == "running"
    print(f"class.up of {STUDENTS} labs of 3+1: {a_class['up_seconds']:.0f}s")


def test_a_second_class_up_changes_nothing_and_fewer_students_are_refused(a_class):
    again = cli("class.up", "--students", str(STUDENTS), "--class", a_class["name"], "--spec", str(a_class["spec"]))
    assert (again.stdout + again.stderr).count("unchanged") == STUDENTS, again.stderr
    fewer = cli("class.up", "--students", "2", "--class", a_class["name"], "--spec", str(a_class["spec"]), check=False)
    assert fewer.returncode == 2 and "a class does not shrink" in fewer.stderr and "hint:" in fewer.stderr


def test_class_status_shows_every_lab_against_its_limits(a_class):
    result = json.loads(cli("class.status", "--class", a_class["name"], "--json").stdout)
    assert [row["lab"] for row in result["labs"]] == a_class["labs"]
    for row in result["labs"]:
        assert (row["nodes_ready"], row["nodes_total"], row["host"]) == (4, 4, "local")
        assert row["leader"] == "manager1" and row["services"] == 0 and row["last_change"]
        assert len(row["nodes"]) == 4
        for node in row["nodes"]:
            assert 0 < node["memory_mb"] < node["memory_limit_mb"] == 192 and node["pids_limit"] == 1024
    table = cli("class.status", "--class", a_class["name"]).stdout
    assert all(lab in table for lab in a_class["labs"]) and "4/4" in table


class Cards(HTMLParser):
    def __init__(self):
        super().__init__()
        self.labs, self.secrets, self._in_secret = [], [], False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "article":
            self.labs.append(attributes["data-lab"])
        self._in_secret = tag == "span" and attributes.get("class") == "secret"

    def handle_data(self, data):
        if self._in_secret:
            self.secrets.append(data)
            self._in_secret = False


def test_cards_one_per_student_with_distinct_secrets_that_open_the_door(a_class, tmp_path):
    result = cli("class.cards", "--class", a_class["name"], "--out", str(tmp_path))
    html, pdf = tmp_path / "cards.html", tmp_path / "cards.pdf"
    assert f"{STUDENTS} cards" in result.stdout
    assert os.stat(html).st_mode & 0o777 == 0o600 and os.stat(pdf).st_mode & 0o777 == 0o600
    parser = Cards()
    parser.feed(html.read_text())
    assert parser.labs == a_class["labs"]
    assert len(set(parser.secrets)) == STUDENTS and all(len(s) >= 22 for s in parser.secrets)
    assert pdf.read_bytes().startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes())) >= 1
    assert not any(s in result.stdout + result.stderr for s in parser.secrets)  # never printed
    text = html.read_text()
    port = int(re.search(r"ssh -p (\d+) student@127\.0\.0\.1", text).group(1))
    # the first card's secret opens the first lab's door; inside, ssh reaches a node
    ssh = paramiko.SSHClient()
    ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
    door_key = (_home() / "labs" / a_class["labs"][0] / "ssh" / "hosts" / "door_ed25519.pub").read_text().split()
    ssh.get_host_keys().add(f"[127.0.0.1]:{port}", door_key[0], paramiko.Ed25519Key(data=base64.b64decode(door_key[1])))
    ssh.connect("127.0.0.1", port=port, username="student", password=parser.secrets[0], look_for_keys=False,
                allow_agent=False, timeout=20)
    try:
        _, out, _ = ssh.exec_command("ssh manager2 hostname; bash -lc 'docker node ls -q | wc -l'", timeout=60)
        assert out.read().decode().split() == ["manager2", "4"]
    finally:
        ssh.close()
    with pytest.raises(paramiko.AuthenticationException):
        wrong = paramiko.SSHClient()
        wrong.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        wrong.connect("127.0.0.1", port=port, username="student", password=parser.secrets[1], look_for_keys=False,
                      allow_agent=False, timeout=20)


def _cgroup_file(container_id: str, controller: str, name: str) -> Path:
    v1 = Path("/sys/fs/cgroup") / controller / "docker" / container_id / name
    return v1 if v1.exists() else Path("/sys/fs/cgroup/docker") / container_id / name


def test_a_memory_and_fork_hog_is_contained_by_its_node(a_class, engine):
    hog_lab, others = a_class["labs"][1], [a_class["labs"][0], a_class["labs"][2]]
    node = engine.containers.get(f"{hog_lab}-worker1")
    registry = f"{status_json(hog_lab)['registry']}/swarmdeck/web:1"
    # a student's container that wants 300 MB in a 192 MiB node: killed inside the node's limit
    code, output = node.exec_run(["sh", "-c", f"docker run --rm --entrypoint sh {registry} -c "
                                  "'x=$(head -c 300000000 /dev/zero | tr \"\\0\" a); echo survived'"])
    assert b"survived" not in output and code != 0, output
    if _cgroup_file(node.id, "memory", "memory.max_usage_in_bytes").exists():
        peak = int(_cgroup_file(node.id, "memory", "memory.max_usage_in_bytes").read_text())
        # it reached the node's limit, not beyond (the kernel's charge may pass it by a few pages)
        assert 150 << 20 < peak <= (192 << 20) + (1 << 20), peak
    # a bounded fork hog: 1500 sleeping processes asked for, the node's pids limit stops it at 1024
    node.exec_run(["sh", "-c", "i=0; while [ $i -lt 1500 ]; do sleep 20 & i=$((i+1)); done 2>/dev/null; wait"],
                  detach=True)
    time.sleep(5)
    pids = _cgroup_file(node.id, "pids", "pids.current")
    assert int(pids.read_text()) <= 1024
    assert "max" in _cgroup_file(node.id, "pids", "pids.events").read_text()
    assert int(re.search(r"max (\d+)", _cgroup_file(node.id, "pids", "pids.events").read_text()).group(1)) > 0
    # meanwhile the other labs' nodes stay Ready and their engines answer
    for lab in others:
        assert all(n["state"] == "ready" for n in status_json(lab)["nodes"])
        for address in [n["address"] for n in status_json(lab)["nodes"]]:
            client = node_client(lab, address, timeout=10)
            try:
                assert client.version()["ApiVersion"]
            finally:
                client.close()
    deadline = time.monotonic() + 40
    while int(pids.read_text()) > 300 and time.monotonic() < deadline:  # the sleeps end by themselves
        time.sleep(1)


def test_class_reset_restores_a_broken_lab_and_touches_no_other(a_class, engine):
    broken, others = a_class["labs"][0], a_class["labs"][1:]
    ids_before = _node_ids(broken)
    cli("service.create", f"{status_json(others[1])['registry']}/swarmdeck/web:1", "--name", "keepme", "--replicas", "1",
        "--lab", others[1])
    other_ids = {lab: _node_ids(lab) for lab in others}
    other_services = {lab: _services(lab) for lab in others}
    # broken three ways (and an engine reconfigured): 50 replicas, a node that left, 2 of 3 managers killed
    manager = _manager(broken)
    try:
        registry = status_json(broken)["registry"]
        manager.services.create(f"{registry}/swarmdeck/web:1", name="flood", mode=docker.types.ServiceMode("replicated", 50))
        manager.networks.create("student-net", driver="overlay")
    finally:
        manager.close()
    engine.containers.get(f"{broken}-worker1").exec_run(["docker", "swarm", "leave", "--force"])
    engine.containers.get(f"{broken}-manager1").exec_run(
        ["sed", "-i", 's/"log-driver"/"debug": true, "log-driver"/', "/etc/docker/daemon.json"])
    cli("lab.kill", "manager2", "--lab", broken)
    cli("lab.kill", "manager3", "--lab", broken)
    started = time.monotonic()
    result = cli("class.reset", "s01", "--class", a_class["name"], timeout=300)
    seconds = time.monotonic() - started
    assert f"{broken} reset in" in result.stdout and "restoring its snapshot" in result.stderr  # not whole
    status = status_json(broken)
    assert [n["state"] for n in status["nodes"]] == ["ready"] * 4 and status["state"] == "running"
    assert _node_ids(broken) == ids_before  # the same swarm: every node back, worker1 included
    assert _services(broken) == []
    manager = _manager(broken)
    try:
        assert "student-net" not in [n.name for n in manager.networks.list()]
        assert not manager.secrets.list()
    finally:
        manager.close()
    daemon = engine.containers.get(f"{broken}-manager1").exec_run(["cat", "/etc/docker/daemon.json"]).output
    assert b'"debug"' not in daemon
    for lab in others:
        assert _node_ids(lab) == other_ids[lab] and _services(lab) == other_services[lab]
    print(f"class.reset of a 3+1 lab broken three ways: {seconds:.1f}s (CLI included)")


def test_class_reset_puts_a_whole_lab_back_in_place(a_class, engine):
    """A lab whose swarm is whole (every node up, Ready, the same) is put back through the APIs:
    what the student made is gone, the node IDs stay, and no manager restarted."""
    lab = a_class["labs"][1]
    ids_before = _node_ids(lab)
    started_at = {c.name: c.attrs["State"]["StartedAt"] for c in engine.containers.list(filters={"label": f"{labels.LAB}={lab}"})}
    registry = status_json(lab)["registry"]
    manager = _manager(lab)
    try:
        manager.networks.create("student-net", driver="overlay", attachable=True)
        manager.services.create(f"{registry}/swarmdeck/web:1", name="made", networks=["student-net"],
                                mode=docker.types.ServiceMode("replicated", 3))
        manager.secrets.create(name="student-secret", data=b"s3cret")
        manager.configs.create(name="student-config", data=b"x=1")
        worker = next(n for n in manager.nodes.list() if n.attrs["Description"]["Hostname"] == "worker1")
        worker.update({**worker.attrs["Spec"], "Availability": "drain", "Labels": {"zone": "student"}})
        spec = manager.api.inspect_swarm()
        manager.api.update_swarm(version=spec["Version"]["Index"],
                                 swarm_spec={**spec["Spec"], "Orchestration": {"TaskHistoryRetentionLimit": 2}})
    finally:
        manager.close()
    node = engine.containers.get(f"{lab}-manager2")
    assert node.exec_run(["docker", "volume", "create", "student-volume"]).exit_code == 0
    ran = node.exec_run(["docker", "run", "-d", "--name", "by-hand", "--network", "student-net", f"{registry}/swarmdeck/web:1"])
    assert ran.exit_code == 0, ran.output  # on the student's attachable overlay: it must go before the network

    result = cli("class.reset", a_class["labs"][1].rsplit("-", 1)[1], "--class", a_class["name"], timeout=300)
    assert "reset in place" in result.stderr and "restoring its snapshot" not in result.stderr, result.stderr
    assert _node_ids(lab) == ids_before and _services(lab) == []
    manager = _manager(lab)
    try:
        assert "student-net" not in [n.name for n in manager.networks.list()]
        assert not manager.secrets.list() and not manager.configs.list()
        worker = next(n for n in manager.nodes.list() if n.attrs["Description"]["Hostname"] == "worker1")
        assert worker.attrs["Spec"]["Availability"] == "active" and not worker.attrs["Spec"].get("Labels")
        assert manager.api.inspect_swarm()["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"] != 2
    finally:
        manager.close()
    assert node.exec_run(["docker", "ps", "-aq", "--filter", "name=by-hand"]).output.strip() == b""
    assert b"student-volume" not in node.exec_run(["docker", "volume", "ls", "-q"]).output
    after = {c.name: c.attrs["State"]["StartedAt"] for c in engine.containers.list(filters={"label": f"{labels.LAB}={lab}"})}
    assert after == started_at  # nothing restarted
    assert status_json(lab)["state"] == "running"


def test_class_down_removes_the_class_and_nothing_else(a_class, engine):
    result = cli("class.down", "--class", a_class["name"])
    assert f"{STUDENTS} labs" in result.stdout
    for lab in a_class["labs"]:
        assert lab_resources(engine, lab) == []
        assert not (_home() / "labs" / lab).exists()
    assert not (_home() / "classes" / a_class["name"]).exists()
    assert _other_resources(engine, a_class["labs"]) >= a_class["others"]  # every other lab's things are there
    again = cli("class.status", "--class", a_class["name"], check=False)
    assert again.returncode == 2 and "no class named" in again.stderr
