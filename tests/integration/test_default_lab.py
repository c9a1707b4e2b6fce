"""The default lab, end to end, checked through the docker SDK and the real docker CLI."""

from __future__ import annotations

import os
import subprocess

import pytest

from provision import state
from provision.remote import reach
from provision.wait import wait_until
from tests.labs import INVOKE, cli, status_json, swarm_nodes
from tests.labs import leader_client as manager_client

pytestmark = pytest.mark.integration


def test_status_json_reports_the_default_lab(default_lab):
    name, _ = default_lab
    status = status_json(name)
    assert status["name"] == name and status["provider"] == "docker"
    assert [n["name"] for n in status["nodes"]] == ["manager1", "manager2", "manager3", "worker1", "worker2"]
    assert status["registry"] == f"{status['nodes'][0]['address']}:5000"
    assert {n["state"] for n in status["nodes"]} == {"ready"}
    assert sum(n["leader"] for n in status["nodes"]) == 1
    for node in status["nodes"]:
        assert set(node) >= {"name", "role", "address", "state", "availability", "leader"}
    assert state.read_route(name) == reach.DIRECT  # this machine holds the lab's bridge: no tunnel


def test_swarm_has_three_managers_one_leader_and_two_workers(default_lab):
    nodes = swarm_nodes(default_lab[0])
    managers = {h: n for h, n in nodes.items() if n["Spec"]["Role"] == "manager"}
    workers = {h: n for h, n in nodes.items() if n["Spec"]["Role"] == "worker"}
    assert sorted(managers) == ["manager1", "manager2", "manager3"]
    assert sorted(workers) == ["worker1", "worker2"]
    assert sum(bool(n["ManagerStatus"].get("Leader")) for n in managers.values()) == 1
    assert all(n["ManagerStatus"]["Reachability"] == "reachable" for n in managers.values())
    assert all(n["Status"]["State"] == "ready" and n["Spec"]["Availability"] == "active" for n in nodes.values())


def test_every_node_resolves_every_hostname(default_lab):
    name, _ = default_lab
    names = ["manager1", "manager2", "manager3", "worker1", "worker2"]
    addresses = {n["name"]: n["address"] for n in status_json(name)["nodes"]}
    for node in names:
        out = cli("lab.ssh", node, "--lab", name, "--command", "getent hosts " + " ".join(names)).stdout
        resolved = {line.split()[1]: line.split()[0] for line in out.splitlines()}
        assert resolved == addresses, f"on {node}: {out}"


def test_six_replicas_from_the_lab_registry_run_on_three_nodes_or_more(default_lab):
    name, _ = default_lab
    registry = status_json(name)["registry"]
    client = manager_client(name)
    try:
        service = client.services.create(
            f"{registry}/swarmdeck/web:1", name="web6", env=["NODE_NAME={{.Node.Hostname}}"],
            mode={"Replicated": {"Replicas": 6}},
        )

        def running_nodes():
            tasks = [t for t in service.tasks() if t["Status"]["State"] == "running"]
            return {t["NodeID"] for t in tasks} if len(tasks) == 6 else None

        nodes = wait_until(running_nodes, timeout=90, describe="6 running replicas of web6")
        assert len(nodes) >= 3
        service.remove()
    finally:
        client.close()


def test_lab_env_points_the_real_docker_cli_at_the_lab(default_lab):
    name, _ = default_lab
    script = f'eval "$({INVOKE} lab.env manager1 --lab {name})" && docker node ls --format "{{{{.Hostname}}}}"'
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, check=True).stdout
    assert sorted(out.split()) == ["manager1", "manager2", "manager3", "worker1", "worker2"]
    exports = cli("lab.env", "manager1", "--lab", name).stdout
    assert 'DOCKER_TLS_VERIFY="1"' in exports and ":2376" in exports


def test_registry_lists_and_side_loads_images(default_lab, engine, tmp_path):
    name, _ = default_lab
    listing = cli("registry.ls", "--lab", name).stdout
    assert "swarmdeck/web: 1, 2, 3" in listing
    (tmp_path / "Dockerfile").write_text("FROM swarmdeck/web:2\nLABEL test=side-load\n")
    engine.images.build(path=str(tmp_path), tag="it-sideload:7", rm=True, forcerm=True)
    try:
        reference = cli("registry.push", "it-sideload:7", "--lab", name).stdout.strip()
        assert reference.endswith("/it-sideload:7")
        assert "it-sideload: 7" in cli("registry.ls", "--lab", name).stdout
    finally:
        engine.images.remove("it-sideload:7", force=True)
    missing = cli("registry.push", "no-such-image:1", "--lab", name, check=False)
    assert missing.returncode == 1 and "is not on this machine's Docker engine" in missing.stderr


def test_rerunning_up_changes_nothing_and_keeps_node_ids(default_lab):
    name, _ = default_lab
    before = {h: n["ID"] for h, n in swarm_nodes(name).items()}
    again = cli("lab.up", "--lab", name)
    assert " changed " not in again.stderr, again.stderr
    assert {h: n["ID"] for h, n in swarm_nodes(name).items()} == before


def test_changed_engine_config_is_restored_with_an_engine_restart(default_lab):
    name, _ = default_lab
    cli("lab.ssh", "worker2", "--lab", name, "--command", "sed -i 's/\"mtu\"/\"debug\": false, \"mtu\"/' /etc/docker/daemon.json")
    result = cli("lab.up", "--lab", name)
    assert "setup worker2: 7 steps, changed: engine config" in result.stderr
    assert '"debug"' not in cli("lab.ssh", "worker2", "--lab", name, "--command", "cat /etc/docker/daemon.json").stdout
    wait_until(lambda: swarm_nodes(name)["worker2"]["Status"]["State"] == "ready", timeout=60,
               describe="worker2 to be ready after its engine restarted")


def test_kill_then_start_a_worker(default_lab):
    name, _ = default_lab
    cli("lab.kill", "worker1", "--lab", name)
    assert next(n for n in status_json(name)["nodes"] if n["name"] == "worker1")["machine"] == "stopped"
    cli("lab.start", "worker1", "--lab", name)
    wait_until(lambda: swarm_nodes(name)["worker1"]["Status"]["State"] == "ready", timeout=90,
               describe="worker1 to be ready again")
    hosts = cli("lab.ssh", "worker1", "--lab", name, "--command", "getent hosts manager3").stdout
    assert "manager3" in hosts


def test_ssh_command_passes_the_exit_code(default_lab):
    result = cli("lab.ssh", "manager2", "--lab", default_lab[0], "--command", "hostname; exit 7", check=False)
    assert result.returncode == 7 and result.stdout.strip() == "manager2"


def test_tokens_are_shown_only_when_asked(default_lab):
    out = cli("swarm.tokens", "--lab", default_lab[0]).stdout
    assert out.count("SWMTKN-1-") == 2


def test_swarm_init_on_a_formed_lab_changes_nothing(default_lab):
    result = cli("swarm.init", "--lab", default_lab[0])
    assert " changed " not in result.stderr


def test_a_host_firewall_gets_the_swarm_ports_opened(default_lab):
    name = default_lab[0]
    close = ("iptables -I INPUT -i lo -j ACCEPT && iptables -I INPUT -p tcp --dport 22 -j ACCEPT "
             "&& iptables -I INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT && iptables -P INPUT DROP")
    cli("lab.ssh", "worker2", "--lab", name, "--command", close)
    try:
        result = cli("lab.up", "--lab", name)
        assert "setup worker2: 7 steps, changed: firewall" in result.stderr
        rules = cli("lab.ssh", "worker2", "--lab", name, "--command", "iptables -S INPUT").stdout
        for rule in ("-p tcp -m tcp --dport 2377", "-p tcp -m tcp --dport 7946", "-p udp -m udp --dport 7946",
                     "-p udp -m udp --dport 4789", "-p tcp -m tcp --dport 2376"):
            assert f"-A INPUT {rule} -j ACCEPT" in rules
        assert "setup worker2: 7 steps, all ok" in cli("lab.up", "--lab", name).stderr
    finally:
        cli("lab.ssh", "worker2", "--lab", name, "--command", "iptables -P INPUT ACCEPT")


def test_up_with_other_nodes_for_an_existing_lab_is_refused(default_lab):
    result = cli("lab.up", "--lab", default_lab[0], "--workers", "3", check=False)
    assert result.returncode == 2 and "exists with other nodes" in result.stderr
    assert "lab.down --lab" in result.stderr


def test_doctor_reports_every_check_with_fixes(default_lab):
    result = cli("lab.doctor", check=False)
    for check in ("docker engine:", "node image:", "runtime profile:", "cgroups: v", "disk:", "ipvs:", "vxlan:",
                  "memory:", "kvm:", "libvirt:", "vm image tools:"):
        assert check in result.stdout
    assert ("[FAIL]" in result.stdout) == (result.returncode == 1)
