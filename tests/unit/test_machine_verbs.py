"""docker-machine's verbs without an engine: scp arguments, ACTIVE detection, lab states and
lab.status's exit, the entry point as data, lab.ls's deadline, docker contexts' ownership."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator import access, listing
from orchestrator import usecases as labs
from orchestrator.tables import lab_list_table, status_table
from orchestrator.views import LabStatus, NodeStatus, not_ready, startable
from provision import state
from provision.errors import LabError, LabUnhealthy
from provision.lab_services import entry_point as entrypoint
from provision.plan import plan
from provision.providers.base import SSHTarget
from provision.remote import docker_contexts, tls
from provision.spec import load as spec_load

ENTRY = {"kind": "load-balancer", "address": "10.199.0.9", "ports": [8080, 8081]}


def lab_plan(name="web", managers=1, workers=1):
    return plan(spec_load.load_spec(None, {}, {"name": name, "managers": managers, "workers": workers}),
                "10.199.0.0/24", 1500, shares_kernel=True)  # container nodes, as the docker provider plans them


def targets(lab_plan_, port=22):
    return {n.name: SSHTarget(n.address, port) for n in lab_plan_.nodes}


# -- lab.scp ----------------------------------------------------------------------------------


def test_a_path_is_on_a_node_only_when_it_starts_with_node_colon():
    assert access.parse_location("worker1:/etc/hosts") == access.Location("worker1", "/etc/hosts")
    assert access.parse_location("worker1:") == access.Location("worker1", "")  # the node's home
    for local in ("/tmp/a:b", "./worker1:x", "plain.txt", ":x", "dir/sub:y"):
        assert access.parse_location(local) == access.Location(None, local)


def test_scp_copies_with_the_lab_key_and_checked_host_keys():
    lab = lab_plan()
    up = access.scp_argv("web", lab, [access.Location(None, "./app.yml")], access.Location("worker1", "/root/"),
                         recursive=False, targets=targets(lab))
    assert up[0] == "scp" and up[-2:] == ["./app.yml", "root@10.199.0.11:/root/"]
    assert "StrictHostKeyChecking=yes" in up and "IdentitiesOnly=yes" in up and "-3" not in up and "-r" not in up
    assert up[up.index("-i") + 1].endswith("/labs/web/ssh/id_ed25519")
    assert any(o.startswith("UserKnownHostsFile=") and o.endswith("/labs/web/ssh/known_hosts") for o in up)
    down = access.scp_argv("web", lab, [access.Location("manager1", "/etc")], access.Location(None, "/tmp/etc"),
                           recursive=True, targets=targets(lab))
    assert "-r" in down and down[-2:] == ["root@10.199.0.10:/etc", "/tmp/etc"]


def test_scp_between_two_nodes_goes_through_this_machine():
    lab = lab_plan()
    argv = access.scp_argv("web", lab, [access.Location("manager1", "/a")], access.Location("worker1", "/b"),
                           recursive=False, targets=targets(lab))
    assert "-3" in argv and argv[-2:] == ["root@10.199.0.10:/a", "root@10.199.0.11:/b"]


def test_scp_refusals_say_why():
    lab = lab_plan()
    with pytest.raises(LabError, match="neither side of the copy is on a node"):
        access.scp_argv("web", lab, [access.Location(None, "a")], access.Location(None, "b"), recursive=False,
                        targets=targets(lab))
    with pytest.raises(LabError, match=r"no node 'db' in lab 'web' \(its nodes: manager1, worker1\)") as caught:
        access.scp_argv("web", lab, [access.Location("db", "x")], access.Location(None, "b"), recursive=False,
                        targets=targets(lab))
    assert "./db:x" in caught.value.hint
    split = {"manager1": SSHTarget("10.199.0.10", 22), "worker1": SSHTarget("10.199.0.11", 2222)}
    with pytest.raises(LabError, match="different ports"):
        access.scp_argv("web", lab, [access.Location("manager1", "x")], access.Location("worker1", "y"),
                        recursive=False, targets=split)


def test_scp_to_a_host_on_another_port_or_an_ipv6_address():
    lab = lab_plan()
    argv = access.scp_argv("web", lab, [access.Location(None, "f")], access.Location("worker1", "/tmp/"),
                           recursive=False, targets={"worker1": SSHTarget("fd00::11", 2222)})
    assert "Port=2222" in argv and argv[-1] == "root@[fd00::11]:/tmp/"


def test_an_unknown_node_names_the_labs_nodes():
    with pytest.raises(LabError, match=r"no node 'worker9' in lab 'web' \(its nodes: manager1, worker1\)"):
        access.find_node(lab_plan(), "worker9")


# -- ACTIVE -----------------------------------------------------------------------------------


ADDRESSES = {"manager1": "10.199.0.10", "worker1": "10.199.0.11"}


def env_of(lab_env_output: str) -> dict[str, str]:
    """The variables a bash `eval` of these lines would set."""
    found = {}
    for line in lab_env_output.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            found[key] = value.strip('"')
    return found


def test_the_node_lab_env_points_at_is_active(swarmdeck_home):
    certs = swarmdeck_home / "labs" / "web" / "tls" / "client"
    shell = {"DOCKER_HOST": "tcp://10.199.0.11:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs),
             "SWARMDECK_LAB": "web", "SWARMDECK_NODE": "worker1"}
    assert listing.active_node("web", ADDRESSES, shell, certs) == "worker1"
    assert listing.active_node("web", ADDRESSES, {**shell, "DOCKER_HOST": "tcp://10.199.0.10:2376/"}, certs) == "manager1"
    assert listing.active_node("web", ADDRESSES, {}, certs) is None  # lab.env -u, or never run
    assert listing.active_node("web", ADDRESSES, {**shell, "DOCKER_HOST": "tcp://10.199.0.99:2376"}, certs) is None
    # the same address in another lab's shell (existing hosts can be shared): not this lab
    assert listing.active_node("web", ADDRESSES, {**shell, "SWARMDECK_LAB": "db"}, certs) is None
    other = swarmdeck_home / "labs" / "db" / "tls" / "client"
    assert listing.active_node("web", ADDRESSES, {**shell, "DOCKER_CERT_PATH": str(other)}, certs) is None
    # set by hand, without swarmdeck's own variables
    assert listing.active_node("web", ADDRESSES, {"DOCKER_HOST": "tcp://10.199.0.10:2376"}, certs) == "manager1"


def test_a_docker_context_variable_naming_a_node_is_active(swarmdeck_home):
    certs = swarmdeck_home / "labs" / "web" / "tls" / "client"
    assert listing.active_node("web", ADDRESSES, {"DOCKER_CONTEXT": "swarmdeck-web-manager1"}, certs) == "manager1"
    assert listing.active_node("web", ADDRESSES, {"DOCKER_CONTEXT": "swarmdeck-db-manager1"}, certs) is None
    both = {"DOCKER_CONTEXT": "swarmdeck-web-manager1", "DOCKER_HOST": "unix:///var/run/docker.sock"}
    assert listing.active_node("web", ADDRESSES, both, certs) is None  # DOCKER_HOST wins, as for the docker CLI


def test_lab_env_output_makes_its_node_active(swarmdeck_home, monkeypatch):
    """What lab.env prints is what ACTIVE recognises (the two must not drift apart)."""
    monkeypatch.setattr(labs.inventory, "existing_lab", lambda name: (None, lab_plan(name)))
    monkeypatch.setenv("SHELL", "/bin/bash")
    shell = env_of(labs.env("web", "worker1", "bash"))
    assert listing.active_node("web", ADDRESSES, shell, Path(tls.client_certs("web").folder)) == "worker1"


def row(**fields):
    values = dict(name="web", provider="docker", state="running", ready=2, total=2, leader="manager1",
                  registry=None, active=None, error=None)
    return listing.LabSummary(**{**values, **fields})


def test_lab_ls_table_stars_the_active_lab_and_shows_errors():
    text = lab_list_table([row(active="manager1"), row(name="db", state="unreachable", ready=0, total=0,
                                                       leader=None, error="no answer within 6 s")], ["other"])
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "ACTIVE", "PROVIDER", "STATE", "NODES", "LEADER", "REGISTRY", "ERRORS"]
    assert lines[1].split()[:4] == ["web", "*", "manager1", "docker"] and "2/2" in lines[1]
    assert lines[2].split()[:3] == ["db", "-", "docker"] and lines[2].endswith("no answer within 6 s")
    assert "*" not in lines[2] and "other" in lines[-1]


# -- states and lab.status's exit --------------------------------------------------------------


def status(*nodes, swarm=True):
    return LabStatus("web", "docker", None, ENTRY, swarm, list(nodes))


def node(name, state_="ready", machine="running", role=None):
    return NodeStatus(name, role or ("manager" if name.startswith("manager") else "worker"), "10.199.0.10", state_,
                      "active", name == "manager1", machine)


def test_lab_states():
    assert status(node("manager1"), node("worker1")).state == "running"
    assert status(node("manager1"), node("worker1", "ready", "stopped")).state == "partly stopped"  # killed just now
    assert status(node("manager1"), node("worker1", "down")).state == "partly stopped"
    assert status(node("manager1"), node("worker1", "paused", "paused")).state == "partly stopped"
    stopped = status(node("manager1", "stopped", "stopped"), node("worker1", "paused", "paused"), swarm=False)
    assert stopped.state == "stopped"
    assert status(node("manager1", "stopped", "stopped"), node("worker1"), swarm=False).state == "partly stopped"
    assert status(node("manager1", "running"), node("worker1"), swarm=False).state == "broken"  # nothing to start
    assert status(node("manager1"), node("worker1", "missing", "missing")).state == "broken"
    assert status().state == "broken"


def test_status_exits_zero_only_when_every_node_is_ready():
    labs.require_healthy(status(node("manager1"), node("worker1")))
    with pytest.raises(LabUnhealthy) as caught:
        labs.require_healthy(status(node("manager1"), node("worker1", "ready", "stopped")))
    assert caught.value.exit_code == 5
    assert "lab web is partly stopped: not ready: worker1 (machine stopped)" in str(caught.value)
    assert "lab.start worker1 --lab web" in caught.value.hint


def test_status_names_every_node_to_start_and_otherwise_what_to_look_at():
    both = status(node("manager1", "paused", "paused"), node("worker1", "stopped", "stopped"), swarm=False)
    assert startable(both.nodes) == ["manager1", "worker1"]
    with pytest.raises(LabUnhealthy) as caught:
        labs.require_healthy(both)
    assert "no manager answers" in str(caught.value)
    assert "lab.start manager1 --lab web" in caught.value.hint and "lab.start worker1 --lab web" in caught.value.hint
    with pytest.raises(LabUnhealthy) as caught:
        labs.require_healthy(status(node("manager1"), node("worker1", "down")))
    assert "worker1 (down)" in str(caught.value) and "lab.ssh NODE --lab web" in caught.value.hint
    engine_killed = LabStatus("hosts", "ssh", None, ENTRY, True, [node("manager1"), node("worker1", "down")])
    with pytest.raises(LabUnhealthy) as caught:
        labs.require_healthy(engine_killed)  # an existing host's machine runs: lab.start starts its engine
    assert "lab.start worker1 --lab hosts" in caught.value.hint
    hung = status(node("manager1", "running"), node("worker1", "running"), swarm=False)
    assert not_ready(hung.nodes) == ["manager1 (unknown)", "worker1 (unknown)"]
    with pytest.raises(LabUnhealthy) as caught:
        labs.require_healthy(hung)
    assert "lab.up --lab web" in caught.value.hint


# -- the entry point as data --------------------------------------------------------------------


def test_the_entry_point_is_data_and_the_table_still_reads_well(monkeypatch):
    monkeypatch.setattr(entrypoint.ipvs, "available", lambda: False)
    lab = lab_plan()
    data = entrypoint.entry_point(lab).to_json()
    assert data == {"kind": "load-balancer", "address": "10.199.0.9", "ports": [8080, 8081]}
    monkeypatch.setattr(entrypoint.ipvs, "available", lambda: True)
    assert entrypoint.entry_point(lab).to_json()["kind"] == "routing-mesh"
    assert entrypoint.describe(data) == "load balancer at 10.199.0.9 (ports 8080, 8081)"
    result = status(node("manager1"), node("worker1"))
    assert result.to_json()["entry_point"] == ENTRY and result.to_json()["state"] == "running"
    assert "entry point: load balancer at 10.199.0.9 (ports 8080, 8081)" in status_table(result)


# -- lab.ls ---------------------------------------------------------------------------------------


def record(lab: str, provider: str = "docker") -> None:
    state.write_provider(lab, provider)


def test_lab_ls_gives_up_on_a_lab_that_hangs_and_lists_the_others(monkeypatch):
    for lab in ("fast", "hung"):
        record(lab)
    (state.lab_dir("old") / "tls").mkdir(parents=True)  # a lab from before the provider record

    def ask(name, environ):
        if name == "hung":
            time.sleep(30)
        return row(name=name)

    monkeypatch.setattr(listing, "ask", ask)
    monkeypatch.setattr(listing, "docker_labs", lambda: (["old"], ["elsewhere"]))
    started = time.monotonic()
    rows, foreign = listing.list_labs({}, deadline=1.0)
    assert time.monotonic() - started < 2
    assert [r.name for r in rows] == ["fast", "hung", "old"] and foreign == ["elsewhere"]
    hung = rows[1]
    assert hung.state == "unreachable" and hung.error == "no answer within 1 s"
    assert rows[0].state == rows[2].state == "running"


def test_lab_ls_without_a_host_engine_still_lists_recorded_labs(monkeypatch):
    record("web")

    def no_engine():
        raise LabError("no Docker engine answers")

    monkeypatch.setattr(listing, "docker_labs", no_engine)
    monkeypatch.setattr(listing, "ask", lambda name, environ: listing.unreachable(name, "docker", "engine down"))
    rows, foreign = listing.list_labs({}, deadline=2.0)
    assert [(r.name, r.state, r.error) for r in rows] == [("web", "unreachable", "engine down")] and foreign == []


def test_lab_ls_lists_an_unreachable_provider_with_its_reason(monkeypatch):
    record("vms", "bogus")
    found = listing.ask("vms", {})
    assert found.state == "unreachable" and "provider 'bogus' is not available" in found.error


# -- docker contexts ----------------------------------------------------------------------------


def test_a_context_is_ours_only_by_its_exact_name_and_description():
    assert docker_contexts.owner("swarmdeck-a-manager1", "swarmdeck lab a node manager1") == ("a", "manager1")
    assert docker_contexts.owner("swarmdeck-a-b-manager1", "swarmdeck lab a-b node manager1") == ("a-b", "manager1")
    assert docker_contexts.owner("swarmdeck-a-b-manager1", "swarmdeck lab a node manager1") is None
    assert docker_contexts.owner("swarmdeck-a-manager1", "my own context") is None


def test_the_context_endpoint_is_quoted_as_csv(tmp_path):
    folder = tmp_path / "odd,folder"
    value = docker_contexts.endpoint("tcp://10.0.0.1:2376", tls.CertFiles(folder))
    assert value.startswith("host=tcp://10.0.0.1:2376,") and f'"ca={folder}/ca.pem"' in value


@pytest.fixture()
def docker_config(tmp_path, monkeypatch):
    """A context store of its own (the docker CLI's DOCKER_CONFIG), never the user's."""
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed")
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    monkeypatch.setenv("DOCKER_CONTEXT", "swarmdeck-gone-manager1")  # a stale one must not break anything
    return folder


def contexts_in_store() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONTEXT"}
    out = subprocess.run(["docker", "context", "ls", "--format", "{{.Name}} {{.DockerEndpoint}}"], env=env,
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_contexts_are_made_updated_and_removed_per_lab_by_the_docker_cli(docker_config):
    """The real docker CLI's store (no engine needed): lab a's contexts go, lab a-b's and the
    user's own stay, even where the names share a prefix."""
    for lab, node, address in (("a", "manager1", "10.0.0.10"), ("a", "worker1", "10.0.0.11"),
                               ("a-b", "manager1", "10.0.1.10")):
        assert docker_contexts.ensure(lab, node, f"tcp://{address}:2376", tls.client_certs(lab))[1] == "created"
    assert docker_contexts.ensure("a", "worker1", "tcp://10.0.0.12:2376", tls.client_certs("a")) == \
        ("swarmdeck-a-worker1", "updated")
    certs = tls.client_certs("a")
    subprocess.run(["docker", "context", "create", "swarmdeck-a-mine", "--docker",
                    f"host=tcp://10.0.0.99:2376,ca={certs.ca},cert={certs.cert},key={certs.key}"],
                   env={k: v for k, v in os.environ.items() if k != "DOCKER_CONTEXT"}, check=True, capture_output=True)
    found = contexts_in_store()
    assert found["swarmdeck-a-manager1"] == "tcp://10.0.0.10:2376" and found["swarmdeck-a-worker1"] == "tcp://10.0.0.12:2376"
    keys = list(docker_config.glob("contexts/tls/*/docker/key.pem"))
    assert keys and all(stat.S_IMODE(k.stat().st_mode) & 0o077 == 0 for k in keys)  # the client key stays private
    assert sorted(docker_contexts.remove_lab("a")) == ["swarmdeck-a-manager1", "swarmdeck-a-worker1"]
    assert set(contexts_in_store()) == {"default", "swarmdeck-a-b-manager1", "swarmdeck-a-mine"}
    assert docker_contexts.remove_lab("a") == []


def test_a_context_swarmdeck_did_not_make_is_left_alone(docker_config):
    certs = tls.client_certs("a")
    subprocess.run(["docker", "context", "create", "swarmdeck-a-manager1", "--description", "mine", "--docker",
                    f"host=tcp://10.0.0.99:2376,ca={certs.ca},cert={certs.cert},key={certs.key}"],
                   env={k: v for k, v in os.environ.items() if k != "DOCKER_CONTEXT"}, check=True, capture_output=True)
    with pytest.raises(LabError, match="swarmdeck did not make"):
        docker_contexts.ensure("a", "manager1", "tcp://10.0.0.10:2376", certs)
    assert contexts_in_store()["swarmdeck-a-manager1"] == "tcp://10.0.0.99:2376"
