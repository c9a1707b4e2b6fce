"""The tutorials on a real lab, as a class runs them: every lesson replayed to the end through the
real docker CLI (and again, on the same lab), a step that does not hold stopping its lesson, and
the tutorials' two compose files deployed unchanged, with `stack.deploy` and with the real
`docker stack deploy` (given `stack.meshless`'s file, this kernel having no IPVS): the get-started
page answers through the lab's entry point with a visit counter growing across replicas; WordPress's
install page answers 200 and MySQL's data survives its task being replaced (pinned to its node,
where its local volume is).

One lab for the module (the session's default lab, with the tutorials' stand-ins pushed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from orchestrator.lessons import model
from provision.paths import lab_dir
from provision.remote.engine_clients import node_client
from provision.wait import wait_until
from tests.labs import cli, status_json

pytestmark = pytest.mark.integration
COMPOSE = model.FOLDER / "compose"
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def lab(default_lab):
    """(name, status) of the default lab with the stand-ins pushed."""
    name, _ = default_lab
    cli("image.tutorial", "--lab", name, timeout=1500)
    return name, status_json(name)


def entry(status: dict) -> str:
    return status["entry_point"]["address"]


def docker_cli(lab_name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real docker CLI after `eval "$(swarmdeck lab.env manager1)"`."""
    exports = {}
    for line in cli("lab.env", "manager1", "--lab", lab_name).stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            exports[key] = value.strip('"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")} | exports
    return subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=timeout)


def get(url: str) -> tuple[int, str]:
    try:
        with _direct.open(url, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def answers(url: str, timeout: float = 120) -> tuple[int, str]:
    found: list[tuple[int, str]] = []

    def ok() -> bool:
        try:
            found.append(get(url))
        except OSError:
            return False
        return found[-1][0] == 200

    wait_until(ok, timeout=timeout, interval=1, describe=f"{url} answering 200")
    return found[-1]


def visits_grow_across_replicas(status: dict) -> None:
    url = f"http://{entry(status)}/"
    answers(url, timeout=180)

    def every_replica_counts() -> bool:  # one answering first does not mean they all reach Redis yet
        return all(re.search(r"Visits:</b>\s*\d+", get(url)[1]) for _ in range(6))

    wait_until(every_replica_counts, timeout=120, interval=1, describe=f"every replica behind {url} counting visits")
    pages = [get(url)[1] for _ in range(8)]
    visits = [int(re.search(r"Visits:</b>\s*(\d+)", page)[1]) for page in pages]
    hosts = {re.search(r"Hostname:</b>\s*([^<\s]+)", page)[1] for page in pages}
    assert visits == sorted(visits) and visits[-1] - visits[0] == 7, visits
    assert len(hosts) > 1, f"one replica answered every request: {hosts}"


def routes(lab_name: str) -> dict:
    path = lab_dir(lab_name) / "stacks" / "routes.json"
    return json.loads(path.read_text()) if path.exists() else {}


# -- lessons ------------------------------------------------------------------------------------


@pytest.mark.parametrize("lesson", model.names())
def test_every_lesson_replays_to_the_end(lab, lesson):
    name, _ = lab
    started = time.monotonic()
    result = cli("lesson.run", lesson, "--lab", name, timeout=900)
    steps = len(model.load(lesson).steps)
    assert f"lesson {lesson}: steps 1 to {steps} of {steps} hold" in result.stderr, result.stderr[-3000:]
    assert result.stdout.count("── step ") == steps and "✗" not in result.stdout
    shown = json.loads((lab_dir(name) / "lesson.json").read_text())  # what the visualizer shows
    assert shown["lesson"] == lesson and shown["status"] == "done" and shown["step"] == steps
    print(f"lesson {lesson}: {steps} steps in {time.monotonic() - started:.0f}s")


def test_a_lesson_runs_again_on_the_same_lab_and_stops_on_a_step_that_does_not_hold(lab):
    name, _ = lab
    cli("lesson.run", "swarm-basics", "--lab", name, "--until", "4")  # leaves my-nginx behind
    again = cli("lesson.run", "swarm-basics", "--lab", name, "--until", "1")  # cleans it up first
    assert "removed what an earlier run left: service my-nginx" in again.stdout
    # the stop step of edureka-ha, alone: no task of its service runs, so the step cannot run
    failed = cli("lesson.run", "edureka-ha", "--lab", name, "--step", "11", "--until", "11", check=False)
    assert failed.returncode != 0
    assert "lesson edureka-ha stops at step 11" in failed.stderr
    assert "no task of service Angular-App-Container runs" in failed.stderr
    shown = json.loads((lab_dir(name) / "lesson.json").read_text())
    assert shown["lesson"] == "edureka-ha" and shown["step"] == 11 and shown["status"] == "failed"


# -- the tutorials' stacks ----------------------------------------------------------------------


def test_getstartedlab_with_stack_deploy(lab):
    name, status = lab
    for manager in ("manager1", "manager2", "manager3"):  # part 5: the redis data folder on the manager
        cli("lab.ssh", manager, "--lab", name, "--command", "mkdir -p /home/docker/data")
    deployed = cli("stack.deploy", str(COMPOSE / "getstartedlab.yml"), "getstartedlab", "--lab", name, timeout=600)
    assert "web: port 80:80 ingress -> mode host, routed by the lab's load balancer" in deployed.stderr
    assert "web: endpoint_mode vip -> dnsrr" in deployed.stderr
    kept = (lab_dir(name) / "stacks" / "getstartedlab.yml").read_text()
    assert kept.startswith("# Rewritten by swarmdeck") and "mode: host" in kept
    assert routes(name)["getstartedlab"] == [80, 6379, 8080]
    visits_grow_across_replicas(status)
    assert answers(f"http://{entry(status)}:8080/")[0] == 200  # the visualizer
    removed = cli("stack.rm", "getstartedlab", "--lab", name, timeout=300)
    assert "no service, task or network of it is left" in removed.stderr
    assert "getstartedlab" not in routes(name)
    left = docker_cli(name, "network", "ls", "--filter", "label=com.docker.stack.namespace=getstartedlab", "-q")
    assert left.stdout.strip() == ""


def test_getstartedlab_with_the_real_docker_stack_deploy(lab):
    name, status = lab
    path = cli("stack.meshless", str(COMPOSE / "getstartedlab.yml"), "getstartedlab", "--lab", name).stdout.strip()
    assert path.endswith("stacks/getstartedlab.yml")
    deployed = docker_cli(name, "stack", "deploy", "-c", path, "getstartedlab")
    assert deployed.returncode == 0, deployed.stderr
    visits_grow_across_replicas(status)
    assert docker_cli(name, "stack", "rm", "getstartedlab").returncode == 0
    done = cli("stack.rm", "getstartedlab", "--lab", name, timeout=300)  # waits; drops the routes
    assert "its load-balancer routes are now gone too" in done.stderr and "getstartedlab" not in routes(name)


def mysql_query(lab_name: str, address: str, sql: str) -> str:
    """Run ``sql`` in the mysql task's container on the node at ``address``."""
    client = node_client(lab_name, address, timeout=60)
    try:
        container, = client.containers.list(filters={"label": "com.docker.swarm.service.name=wordpress_mysql"})
        code, out = container.exec_run(["mysql", "-uroot", "-proot", "-N", "mywordpress", "-e", sql])
        assert code == 0, out.decode(errors="replace")
        return container.id + " " + out.decode(errors="replace").strip()
    finally:
        client.close()


@pytest.mark.parametrize("how", ["stack.deploy", "docker stack deploy"])
def test_wordpress_answers_and_mysql_keeps_its_data_when_its_task_moves(lab, how):
    name, status = lab
    source = str(COMPOSE / "wordpress.yml")
    if how == "stack.deploy":
        cli("stack.deploy", source, "wordpress", "--lab", name, timeout=600)
    else:
        path = cli("stack.meshless", source, "wordpress", "--lab", name).stdout.strip()
        assert docker_cli(name, "stack", "deploy", "-c", path, "wordpress").returncode == 0
    code, page = answers(f"http://{entry(status)}:8080/wp-admin/install.php", timeout=240)
    assert code == 200 and "WordPress" in page
    node = docker_cli(name, "service", "ps", "wordpress_mysql", "--filter", "desired-state=running",
                      "--format", "{{.Node}}").stdout.split()[0]
    address = next(n["address"] for n in status["nodes"] if n["name"] == node)
    mysql_query(name, address, "CREATE TABLE IF NOT EXISTS class (note TEXT); INSERT INTO class VALUES ('kept')")
    before = mysql_query(name, address, "SELECT 1").split()[0]
    # pin MySQL to the node holding its local volume, as a production stack does, and move its task
    # (--force: a new task and container; a constraint its task already meets moves nothing)
    pinned = docker_cli(name, "service", "update", "--constraint-add", f"node.hostname=={node}", "--force",
                        "wordpress_mysql")
    assert pinned.returncode == 0, pinned.stderr
    wait_until(lambda: _new_mysql(name, address, before), timeout=180, interval=1, describe="a new mysql task")
    assert mysql_query(name, address, "SELECT note FROM class").endswith("kept")
    assert answers(f"http://{entry(status)}:8080/wp-admin/install.php")[0] == 200
    cli("stack.rm", "wordpress", "--lab", name, timeout=300)
    client = node_client(name, address, timeout=60)
    try:
        client.volumes.get("wordpress_mysql_data").remove()  # the next deploy starts from an empty database
    finally:
        client.close()


def _new_mysql(lab_name: str, address: str, old: str) -> bool:
    try:
        return mysql_query(lab_name, address, "SELECT 1").split()[0] != old
    except (AssertionError, ValueError):
        return False
