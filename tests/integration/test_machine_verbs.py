"""docker-machine's verbs on a real lab (1 manager + 1 worker, no registry): lab.ls with its
ACTIVE star, lab.ip, lab.inspect, lab.scp, lab.context, lab.status's exit code, lab.down of
a lab that does not exist. Checked through the engine, the docker CLI and the nodes themselves."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid

import docker
import docker.tls
import pytest

from provision.paths import REPO
from provision.wait import NotYet, wait_until
from tests.labs import INVOKE, UNHEALTHY, a_lab, cli, swarm_nodes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def docker_config(tmp_path_factory):
    """The docker CLI's contexts go to a store of this module's own, never the user's."""
    folder = tmp_path_factory.mktemp("docker-config")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_CONFIG", str(folder))
        patch.delenv("DOCKER_CONTEXT", raising=False)
        yield folder


@pytest.fixture(scope="module")
def lab(engine, docker_config):
    with a_lab("verbs", "--managers", "1", "--workers", "1", "--no-registry") as name:
        yield name


def address_of(engine, lab: str, node: str) -> str:
    """The node container's address on the lab network, as the engine has it."""
    container = engine.containers.get(f"{lab}-{node}")
    return container.attrs["NetworkSettings"]["Networks"][f"{lab}-net"]["IPAddress"]


def on_node(engine, lab: str, node: str, command: str) -> str:
    """Run ``command`` in the node's container (the engine's channel, not swarmdeck's SSH)."""
    code, output = engine.containers.get(f"{lab}-{node}").exec_run(["sh", "-c", command])
    assert code == 0, output
    return output.decode()


def shell(script: str) -> str:
    """Run ``script`` in one bash, as a user's shell, without the DOCKER_* of this process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_HOST", "DOCKER_TLS", "DOCKER_CERT",
                                                                     "SWARMDECK_LAB", "SWARMDECK_NODE"))}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def row_of(table: str, lab: str) -> list[str]:
    return next(line.split() for line in table.splitlines() if line.split()[:1] == [lab])


def test_ls_lists_the_lab_as_json_and_as_a_table(lab):
    rows = json.loads(cli("lab.ls", "--json").stdout)
    mine = next(r for r in rows if r["name"] == lab)
    leader = next(h for h, n in swarm_nodes(lab).items() if (n.get("ManagerStatus") or {}).get("Leader"))
    assert mine == {"name": lab, "provider": "docker", "state": "running", "ready": 2, "total": 2, "leader": leader,
                    "registry": None, "active": None, "error": None}
    assert row_of(cli("lab.ls").stdout, lab) == [lab, "-", "docker", "running", "2/2", leader, "-"]


def test_ls_stars_the_node_that_lab_env_pointed_this_shell_at(lab):
    steps = [f'eval "$({INVOKE} lab.env manager1 --lab {lab})"', 'docker info --format "{{.Name}}"',
             f"{INVOKE} lab.ls", f"{INVOKE} lab.ls --json", f'eval "$({INVOKE} lab.env -u)"', f"{INVOKE} lab.ls"]
    out = shell(f"cd {REPO} && " + " && echo ---- && ".join(steps))
    _, talked_to, starred, as_json, _, unset = out.split("----\n")
    assert talked_to.strip() == "manager1"  # the docker CLI in that shell talks to manager1 ...
    assert row_of(starred, lab)[1:3] == ["*", "manager1"]  # ... and lab.ls says so
    assert next(r for r in json.loads(as_json) if r["name"] == lab)["active"] == "manager1"
    assert row_of(unset, lab)[1] == "-" and "*" not in row_of(unset, lab)
    assert row_of(cli("lab.ls").stdout, lab)[1] == "-"  # a shell that never ran lab.env


def test_ip_prints_the_nodes_address(lab, engine):
    assert cli("lab.ip", "worker1", "--lab", lab).stdout.strip() == address_of(engine, lab, "worker1")
    unknown = cli("lab.ip", "worker9", "--lab", lab, check=False)
    assert unknown.returncode == 1 and f"no node 'worker9' in lab '{lab}' (its nodes: manager1, worker1)" in unknown.stderr


def test_inspect_gives_what_reaches_the_node(lab, engine):
    found = json.loads(cli("lab.inspect", "worker1", "--lab", lab).stdout)
    address = address_of(engine, lab, "worker1")
    assert found["provider"] == "docker" and found["role"] == "worker" and found["address"] == address
    assert found["machine"]["id"] == engine.containers.get(f"{lab}-worker1").id
    assert found["machine"]["state"] == "running" and found["engine"]["url"] == f"tcp://{address}:2376"
    files = found["engine"]["tls"]
    tls = docker.tls.TLSConfig(client_cert=(files["cert"], files["key"]), ca_cert=files["ca"], verify=True)
    client = docker.DockerClient(base_url=found["engine"]["url"], tls=tls, version="1.41", timeout=30)
    client.api.trust_env = False  # no proxy or CA bundle from the environment, as swarmdeck's own clients
    try:
        assert client.info()["Name"] == "worker1"  # the engine URL and TLS files work as given
    finally:
        client.close()
    ssh = subprocess.run([*found["ssh"]["command"], "hostname"], capture_output=True, text=True, timeout=60)
    assert ssh.returncode == 0 and ssh.stdout.strip() == "worker1"  # so does the ssh command line
    assert "StrictHostKeyChecking=yes" in found["ssh"]["command"]
    unknown = cli("lab.inspect", "nosuch", "--lab", lab, check=False)
    assert unknown.returncode == 1 and "no node 'nosuch'" in unknown.stderr and unknown.stdout == ""


def test_scp_copies_a_file_to_a_node_and_back_unchanged(lab, engine, tmp_path):
    original = tmp_path / "payload.bin"
    original.write_bytes(os.urandom(300_000))
    cli("lab.scp", str(original), "worker1:/tmp/payload.bin", "--lab", lab)
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    assert on_node(engine, lab, "worker1", "sha256sum /tmp/payload.bin").split()[0] == digest
    back = tmp_path / "back.bin"
    cli("lab.scp", "worker1:/tmp/payload.bin", str(back), "--lab", lab)
    assert back.read_bytes() == original.read_bytes()
    cli("lab.scp", "worker1:/tmp/payload.bin", "manager1:/tmp/relayed.bin", "--lab", lab)  # node to node
    assert on_node(engine, lab, "manager1", "sha256sum /tmp/relayed.bin").split()[0] == digest
    missing = cli("lab.scp", "worker1:/no/such/file", str(tmp_path), "--lab", lab, check=False)
    assert missing.returncode != 0 and "No such file" in missing.stderr


def test_scp_recursive_copies_a_folder(lab, engine, tmp_path):
    tree = tmp_path / "site"
    (tree / "css").mkdir(parents=True)
    (tree / "index.html").write_text("<h1>hi</h1>\n")
    (tree / "css" / "main.css").write_text("h1 { color: red }\n")
    cli("lab.scp", "--recursive", str(tree), "manager1:/tmp/site", "--lab", lab)
    listing = on_node(engine, lab, "manager1", "cd /tmp/site && find . -type f | sort && cat css/main.css")
    assert listing.splitlines() == ["./css/main.css", "./index.html", "h1 { color: red }"]
    refused = cli("lab.scp", str(tree), str(tmp_path / "copy"), "--lab", lab, check=False)
    assert refused.returncode == 1 and "neither side of the copy is on a node" in refused.stderr


def docker_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_HOST", "DOCKER_TLS", "DOCKER_CERT"))}
    return subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=60)


def test_context_lets_the_docker_cli_reach_a_node(lab, docker_config):
    made = cli("lab.context", "manager1", "--lab", lab)
    context = f"swarmdeck-{lab}-manager1"
    assert f"docker --context {context} node ls" in made.stdout and "created" in made.stdout
    nodes = docker_cli("--context", context, "node", "ls", "--format", "{{.Hostname}}")
    assert nodes.returncode == 0 and sorted(nodes.stdout.split()) == ["manager1", "worker1"], nodes.stderr
    assert "updated" in cli("lab.context", "manager1", "--lab", lab).stdout
    listed = docker_cli("context", "ls", "--format", "{{.Name}} {{.DockerEndpoint}}").stdout.splitlines()
    address = cli("lab.ip", "manager1", "--lab", lab).stdout.strip()
    assert f"{context} tcp://{address}:2376" in listed
    assert json.loads(cli("lab.inspect", "manager1", "--lab", lab).stdout)["engine"]["context"] == context


def test_status_exit_code_says_whether_every_node_is_ready(lab):
    assert cli("lab.status", "--lab", lab).returncode == 0
    cli("lab.kill", "worker1", "--lab", lab)
    try:
        down = cli("lab.status", "--lab", lab, check=False)
        assert down.returncode == UNHEALTHY
        assert "worker1" in down.stdout and "stopped" in down.stdout  # the table is still printed
        assert f"lab.start worker1 --lab {lab}" in down.stderr
        as_json = cli("lab.status", "--lab", lab, "--json", check=False)
        assert as_json.returncode == UNHEALTHY and json.loads(as_json.stdout)["state"] == "partly stopped"
        assert row_of(cli("lab.ls").stdout, lab)[3:6] == ["partly", "stopped", "1/2"]
    finally:
        cli("lab.start", "worker1", "--lab", lab)

    def healthy():
        result = cli("lab.status", "--lab", lab, check=False)
        if result.returncode:
            raise NotYet(result.stderr.strip().splitlines()[0])
        return True

    wait_until(healthy, timeout=90, interval=1, describe="lab.status to exit 0 with worker1 back")
    assert swarm_nodes(lab)["worker1"]["Status"]["State"] == "ready"


def test_down_removes_the_labs_contexts_and_only_those(lab, docker_config, engine):
    certs = json.loads(cli("lab.inspect", "worker1", "--lab", lab).stdout)["engine"]["tls"]
    cli("lab.context", "worker1", "--lab", lab)
    mine = f"swarmdeck-{lab}-mine"  # the user's own, with a name that starts like the lab's
    made = docker_cli("context", "create", mine, "--docker",
                      f"host=tcp://127.0.0.1:2376,ca={certs['ca']},cert={certs['cert']},key={certs['key']}")
    assert made.returncode == 0, made.stderr
    removed = cli("lab.down", "--lab", lab)
    assert "2 docker contexts" in removed.stdout
    names = docker_cli("context", "ls", "--format", "{{.Name}}").stdout.split()
    assert mine in names and not [n for n in names if n.startswith(f"swarmdeck-{lab}-") and n != mine]
    assert engine.containers.list(all=True, filters={"label": [f"io.swarmdeck.lab={lab}"]}) == []
    docker_cli("context", "rm", mine)


def test_down_of_a_lab_that_does_not_exist_says_so():
    name = f"it-never-{uuid.uuid4().hex[:4]}"
    result = cli("lab.down", "--lab", name)
    assert result.returncode == 0
    assert result.stdout.strip() == f"no lab named {name} on this machine: nothing to remove"
