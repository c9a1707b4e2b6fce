"""The tutorials' Docker Hub images on a lab, offline: image.tutorial builds the stand-ins and
pushes them to the lab registry, and the nodes get them under the Hub's plain names (the lab
registry is their registry mirror), through the real docker CLI and the SDK, as the tutorials
run them: `docker pull busybox`, `docker service create --name web --replicas 6 nginx`, redis
with its data in /data, MariaDB as mysql:5.7 with WordPress against it, the get-started app
counting visits in redis across replicas and built from its own Dockerfile, the visualizer.

This kernel has no IPVS: service VIPs and the routing mesh answer nothing, so the tests ask
the tasks themselves (a busybox container on the task's network or node), services that others
reach by name use DNS round robin (`--endpoint-mode dnsrr`), and the visualizer publishes in
host mode.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from contextlib import contextmanager

import docker
import docker.errors
import docker.types
import pytest

from provision.images import tutorial
from provision.paths import REPO
from provision.remote.engine_clients import node_client
from provision.wait import wait_until
from tests.labs import cli, status_json

pytestmark = pytest.mark.integration
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ROOT_PASSWORD = "it's a \"root\" pass\\word"  # quotes and a backslash: the entrypoints' SQL and PHP quoting
USER_PASSWORD = "word\\press's \"own\" pass"


@pytest.fixture(scope="module")
def lab(default_lab):
    """The default lab with the stand-ins pushed: (name, {node: address}, registry, image.tutorial's run)."""
    name, _ = default_lab
    started = time.monotonic()
    pushed = cli("image.tutorial", "--lab", name, timeout=1200)
    status = status_json(name)
    addresses = {n["name"]: n["address"] for n in status["nodes"]}
    yield name, addresses, status["registry"], (pushed, time.monotonic() - started)


@contextmanager
def engine_of(lab_name: str, address: str):
    client = node_client(lab_name, address, timeout=120)
    try:
        yield client
    finally:
        client.close()


@functools.cache
def node_env(lab_name: str, node: str) -> tuple[tuple[str, str], ...]:
    """The exports of `lab.env NODE` (asked once per node: the lab's TLS material does not change)."""
    exports = []
    for line in cli("lab.env", node, "--lab", lab_name).stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            exports.append((key, value.strip('"')))
    return tuple(exports)


def docker_cli(lab_name: str, node: str, *args: str, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real docker CLI pointed at ``node`` with the exports of `lab.env` (as a student runs it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")} | dict(node_env(lab_name, node))
    return subprocess.run(["docker", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def running_tasks(service, count: int, timeout: float = 120) -> list[dict]:
    def ready():
        tasks = [t for t in service.tasks() if t["DesiredState"] == "running" and t["Status"]["State"] == "running"]
        return tasks if len(tasks) == count else None

    return wait_until(ready, timeout=timeout, describe=f"{count} running tasks of {service.name}")


def task_container(lab_name: str, addresses: dict[str, str], nodes: dict[str, str], task: dict):
    """(node name, the task's container) on the node that runs it."""
    node = nodes[task["NodeID"]]
    client = node_client(lab_name, addresses[node], timeout=60)
    return node, client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])


def node_names(manager) -> dict[str, str]:
    return {n.id: n.attrs["Description"]["Hostname"] for n in manager.nodes.list()}


def busybox(client: docker.DockerClient, script: str, network: str = "bridge") -> str:
    """Run ``script`` in a busybox container (pulled by its Hub name) on that engine."""
    return client.containers.run("busybox", ["sh", "-c", script], network=network, remove=True).decode()


@contextmanager
def removed_afterwards(manager, *services):
    try:
        yield
    finally:
        for service in services:
            try:
                manager.services.get(service).remove()
            except docker.errors.NotFound:
                pass


def remove_volume(client: docker.DockerClient, name: str) -> None:
    """A service's volume on a node, once the service's containers are gone."""
    def gone() -> bool:
        try:
            client.volumes.get(name).remove()
        except docker.errors.NotFound:
            pass  # an APIError (still in use) is "not yet"
        return True

    wait_until(gone, timeout=60, describe=f"volume {name} to be free to remove")


def test_image_tutorial_builds_and_pushes_every_stand_in_under_its_hub_name(lab, engine):
    name, _, registry, (pushed, seconds) = lab
    expected = [f"{registry}/{hub}" for s in tutorial.ordered() for hub in s.hub]
    assert pushed.stdout.split() == expected
    print(f"image.tutorial (build and push) took {seconds:.0f} s")
    for stand_in in tutorial.STAND_INS:  # the real images, on this machine's engine
        labels = engine.images.get(tutorial.local_tag(stand_in)).labels
        assert labels[tutorial.STAND_IN_LABEL] == stand_in.what
    with _direct.open(f"http://{registry}/v2/_catalog?n=1000", timeout=10) as response:
        catalog = set(json.loads(response.read())["repositories"])
    assert {hub.rsplit(":", 1)[0] for s in tutorial.STAND_INS for hub in s.hub} <= catalog
    started = time.monotonic()
    again = cli("image.tutorial", "--lab", name)
    took = time.monotonic() - started
    print(f"a second image.tutorial took {took:.1f} s")
    assert again.stdout == pushed.stdout and " changed " not in again.stderr
    assert "skipped building: the 12 stand-ins are built already" in again.stderr
    assert "skipped pushing: the lab registry holds the 12 stand-ins already" in again.stderr
    assert took < 30, "a second image.tutorial builds and pushes nothing"


def test_registry_ls_marks_the_stand_ins(lab):
    name = lab[0]
    lines = cli("registry.ls", "--lab", name).stdout.splitlines()
    assert f"library/mysql: 5.7  (stand-in: {tutorial.by_name('mysql').what})" in lines
    assert f"library/wordpress: latest, php7.4  (stand-in: {tutorial.by_name('wordpress').what})" in lines
    assert "swarmdeck/web: 1, 2, 3" in lines  # not a stand-in: no mark


def test_docker_pull_busybox_on_a_node_gets_the_stand_in(lab):
    name = lab[0]
    pulled = docker_cli(name, "worker1", "pull", "busybox")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip().endswith("docker.io/library/busybox:latest")
    inspect = docker_cli(name, "worker1", "image", "inspect", "busybox", "--format",
                         f'{{{{index .Config.Labels "{tutorial.STAND_IN_LABEL}"}}}}')
    assert inspect.stdout.strip() == tutorial.by_name("busybox").what
    missing = docker_cli(name, "worker1", "pull", "node:6")  # no stand-in: Docker Hub, which is out of reach
    assert missing.returncode != 0 and "registry-1.docker.io" in missing.stderr


def test_service_create_nginx_by_its_hub_name_reaches_6_of_6_and_every_task_answers(lab):
    name, addresses, _, _ = lab
    created = docker_cli(name, "manager1", "service", "create", "--name", "web", "--replicas", "6", "nginx")
    with engine_of(name, addresses["manager1"]) as manager, removed_afterwards(manager, "web"):
        assert created.returncode == 0, created.stderr
        assert re.search(r"verify: Service \S+ converged", created.stdout), created.stdout
        # the manager resolved the tag to a digest through the mirror: no "could not be accessed" warning
        assert "could not be accessed on a registry" not in created.stderr
        service = manager.services.get("web")
        assert service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith("nginx:latest@sha256:")
        tasks = running_tasks(service, 6, timeout=10)
        nodes = node_names(manager)
        by_node: dict[str, list[str]] = {}
        for task in tasks:
            node, container = task_container(name, addresses, nodes, task)
            by_node.setdefault(node, []).append(container.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"])
        assert len(by_node) >= 3
        for node, ips in by_node.items():  # a task without networks is on its node's bridge
            with engine_of(name, addresses[node]) as client:
                pages = busybox(client, " ".join(f"wget -qO- http://{ip}/;" for ip in ips))
            assert pages.count("swarmdeck-stand-in=nginx container=") == len(ips), pages
            assert "<h1>Welcome to nginx!</h1>" in pages
            # without NODE_NAME (the tutorial sets none) the page says how to have the node named
            assert "node=unknown (set NODE_NAME={{.Node.Hostname}})" in pages


def test_httpd_pages_name_their_container_and_the_node_given_in_node_name(lab):
    name, addresses, _, _ = lab
    created = docker_cli(name, "manager1", "service", "create", "--detach", "--name", "it-httpd", "--replicas", "2",
                         "--env", "NODE_NAME={{.Node.Hostname}}", "--constraint", "node.role==worker", "httpd")
    with engine_of(name, addresses["manager1"]) as manager, removed_afterwards(manager, "it-httpd"):
        assert created.returncode == 0, created.stderr
        tasks = running_tasks(manager.services.get("it-httpd"), 2)
        nodes = node_names(manager)
        for task in tasks:
            node, container = task_container(name, addresses, nodes, task)
            ip = container.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
            with engine_of(name, addresses[node]) as client:
                page = busybox(client, f"wget -qO- http://{ip}:80/")
            assert "<h1>It works!</h1>" in page
            assert f"swarmdeck-stand-in=httpd container={container.attrs['Config']['Hostname']} node={node}<" in page


def test_hello_world_greets_and_the_registry_stand_in_takes_a_push_as_the_tutorial_runs_it(lab):
    name, addresses, _, _ = lab
    hello = docker_cli(name, "worker2", "run", "--rm", "hello-world")
    assert hello.returncode == 0 and "Hello from Docker!" in hello.stdout, hello.stderr
    # the tutorial's own private registry: docker run -d --name registry --restart always -p 5000:5000 registry
    started = docker_cli(name, "worker2", "run", "-d", "--name", "it-registry", "--restart", "always",
                         "-p", "5000:5000", "registry")
    try:
        assert started.returncode == 0, started.stderr
        for step in (("pull", "busybox"), ("tag", "busybox", "127.0.0.1:5000/it/busybox:1")):
            done = docker_cli(name, "worker2", *step)
            assert done.returncode == 0, done.stderr

        def push():
            result = docker_cli(name, "worker2", "push", "127.0.0.1:5000/it/busybox:1")
            return result if result.returncode == 0 else None

        pushed = wait_until(push, timeout=30, describe="a push to the registry stand-in on worker2")
        assert "1: digest: sha256:" in pushed.stdout
        with _direct.open(f"http://{addresses['worker2']}:5000/v2/_catalog", timeout=10) as response:
            assert json.loads(response.read()) == {"repositories": ["it/busybox"]}
    finally:
        docker_cli(name, "worker2", "rm", "-f", "-v", "it-registry")
        docker_cli(name, "worker2", "rmi", "127.0.0.1:5000/it/busybox:1")


@pytest.fixture()
def overlay(lab):
    """An attachable overlay network for one test's services (removed after them)."""
    name, addresses, _, _ = lab
    with engine_of(name, addresses["manager1"]) as manager:
        network = manager.networks.create(f"it-tutorial-{time.monotonic_ns() % 10**6}", driver="overlay",
                                          attachable=True)
        yield manager, network.name
        wait_until(lambda: _removed(network), timeout=60, describe=f"network {network.name} to be removable")


def _removed(network) -> bool:
    network.remove()
    return True


def dnsrr() -> docker.types.EndpointSpec:
    return docker.types.EndpointSpec(mode="dnsrr")


def test_redis_keeps_its_data_in_data_across_a_task_restart(lab, overlay):
    name, addresses, _, _ = lab
    manager, network = overlay
    with removed_afterwards(manager, "it-redis"):
        # the SDK's command replaces the image's entrypoint: protected mode must be off all the same
        service = manager.services.create(
            "redis", ["redis-server", "--appendonly", "yes"], name="it-redis", networks=[network],
            endpoint_spec=dnsrr(), constraints=["node.hostname==worker2"],
            mounts=[docker.types.Mount("/data", "it-redis-data")])
        [first] = running_tasks(service, 1)
        _, container = task_container(name, addresses, node_names(manager), first)
        assert wait_until(lambda: container.exec_run(["redis-cli", "set", "lesson", "kept"]).output == b"OK\n",
                          timeout=30, describe="redis to answer")
        with engine_of(name, addresses["manager1"]) as client:  # a client on another node, by the service's name
            assert busybox(client, "printf 'PING\\r\\n' | nc -w 2 it-redis 6379", network).startswith("+PONG")
        assert "appendonlydir" in container.exec_run(["ls", "/data"]).output.decode()
        service.update(force_update=1)
        wait_until(lambda: [t for t in running_tasks(service, 1) if t["ID"] != first["ID"]], timeout=60,
                   describe="a new redis task")
        [second] = running_tasks(service, 1)
        _, again = task_container(name, addresses, node_names(manager), second)
        value = wait_until(lambda: again.exec_run(["redis-cli", "get", "lesson"]).output, timeout=30,
                           describe="redis to answer again")
        assert value == b"kept\n"
    with engine_of(name, addresses["worker2"]) as worker:
        remove_volume(worker, "it-redis-data")


def test_mariadb_as_mysql_honours_the_env_keeps_its_data_and_wordpress_installs_against_it(lab, overlay):
    name, addresses, _, _ = lab
    manager, network = overlay
    env = {"MYSQL_ROOT_PASSWORD": ROOT_PASSWORD, "MYSQL_DATABASE": "mywordpress", "MYSQL_USER": "mywordpress",
           "MYSQL_PASSWORD": USER_PASSWORD}
    with removed_afterwards(manager, "mysql", "it-wordpress"):
        mysql = manager.services.create(
            "mysql:5.7", name="mysql", networks=[network], endpoint_spec=dnsrr(), env=env,
            constraints=["node.hostname==worker1"], mounts=[docker.types.Mount("/var/lib/mysql", "it-mysql-data")])
        [first] = running_tasks(mysql, 1)
        nodes = node_names(manager)
        _, container = task_container(name, addresses, nodes, first)
        user_sql = ["mysql", "-umywordpress", f"-p{USER_PASSWORD}", "-h127.0.0.1", "mywordpress", "-e"]
        wait_until(lambda: container.exec_run([*user_sql, "CREATE TABLE kept (x INT); INSERT INTO kept VALUES (42)"])
                   .exit_code == 0, timeout=90, describe="the database to be set up from MYSQL_*")
        root = container.exec_run(["mysql", "-uroot", f"-p{ROOT_PASSWORD}", "-h127.0.0.1", "-N", "-e",
                                   "SELECT COUNT(*) FROM mysql.user WHERE user = 'root'"])
        assert root.exit_code == 0 and root.output.split()[-1] == b"2", root.output  # root@localhost, root@%

        wordpress = manager.services.create(
            "wordpress:php7.4", name="it-wordpress", networks=[network], endpoint_spec=dnsrr(),
            mode=docker.types.ServiceMode("replicated", 2),
            env={"WORDPRESS_DB_HOST": "mysql:3306", "WORDPRESS_DB_USER": "mywordpress",
                 "WORDPRESS_DB_PASSWORD": USER_PASSWORD, "WORDPRESS_DB_NAME": "mywordpress"})
        running_tasks(wordpress, 2, timeout=180)
        with engine_of(name, addresses["manager1"]) as client:
            statuses = wait_until(lambda: (lambda out: out if out.count(" 200 OK") == 2 else None)(busybox(
                client, "for ip in $(nslookup tasks.it-wordpress | awk '/^Address/ && !/:53/ {print $2}'); do "
                        "wget -S -O /dev/null http://$ip/wp-admin/install.php 2>&1 | grep -m1 'HTTP/'; done", network)),
                timeout=90, describe="both WordPress replicas to answer 200 on their install page")
        assert statuses.count("HTTP/1.1 200 OK") == 2

        mysql.update(force_update=1)  # the task restarts: same node, same volume, no second set-up
        wait_until(lambda: [t for t in running_tasks(mysql, 1) if t["ID"] != first["ID"]], timeout=90,
                   describe="a new mysql task")
        [second] = running_tasks(mysql, 1)
        _, again = task_container(name, addresses, nodes, second)
        kept = wait_until(lambda: (lambda r: r.output if r.exit_code == 0 else None)(
            again.exec_run([*user_sql, "SELECT x FROM kept"])), timeout=60, describe="the database after a restart")
        assert kept.split()[-1] == b"42"
        assert b"initialising the database" not in again.logs()
    with engine_of(name, addresses["worker1"]) as worker:
        remove_volume(worker, "it-mysql-data")


def test_the_get_started_app_counts_visits_in_redis_across_replicas(lab, overlay):
    name, addresses, _, _ = lab
    manager, network = overlay
    with removed_afterwards(manager, "redis", "it-getstarted"):
        # as the tutorial's compose file: `command: redis-server --appendonly yes` (the image's CMD)
        manager.services.create("redis", args=["redis-server", "--appendonly", "yes"], name="redis",
                                networks=[network], endpoint_spec=dnsrr())
        web = manager.services.create("gordon/get-started:part2", name="it-getstarted", networks=[network],
                                      endpoint_spec=dnsrr(), mode=docker.types.ServiceMode("replicated", 3))
        running_tasks(web, 3)
        with engine_of(name, addresses["manager1"]) as client:
            script = ("ips=$(nslookup tasks.it-getstarted | awk '/^Address/ && !/:53/ {print $2}'); "
                      "for ip in $ips; do wget -qO- http://$ip/; echo; done")
            pages = wait_until(lambda: (lambda out: out if out.count("Visits:</b> ") == 3 and "cannot connect"
                                        not in out else None)(busybox(client, script, network)),
                               timeout=60, describe="3 replicas counting visits in redis")
    lines = [line for line in pages.splitlines() if line]
    assert all(line.startswith("<h3>Hello World!</h3>") for line in lines)
    hostnames = {line.split("<b>Hostname:</b> ")[1].split("<")[0] for line in lines}
    visits = [int(line.rsplit("</b> ", 1)[1]) for line in lines]
    assert len(hostnames) == 3 and visits == sorted(visits) and len(set(visits)) == 3


def test_the_tutorials_own_python_dockerfile_builds_on_a_node_offline(lab, tmp_path):
    name = lab[0]
    app = tmp_path / "get-started"
    shutil.copytree(REPO / "templates" / "tutorial" / "get-started", app)
    assert (app / "Dockerfile").read_text().count("FROM python:2.7-slim") == 1
    built = docker_cli(name, "worker2", "build", "-t", "friendlyhello", ".", cwd=app)
    try:
        assert built.returncode == 0, built.stdout + built.stderr
        assert "Requirement already satisfied: Flask" in built.stdout
        assert "Requirement already satisfied: Redis" in built.stdout
        page = docker_cli(name, "worker2", "run", "--rm", "friendlyhello", "python", "-c",
                          "import app; print(app.app.test_client().get('/').get_data(as_text=True))")
        assert page.returncode == 0, page.stderr
        assert page.stdout.startswith("<h3>Hello World!</h3><b>Hostname:</b> ")
        assert "cannot connect to Redis, counter disabled" in page.stdout  # no redis beside it here
    finally:
        docker_cli(name, "worker2", "rmi", "friendlyhello")


def test_the_visualizer_stand_in_answers_on_8080_with_the_swarms_nodes(lab):
    name, addresses, _, _ = lab
    with engine_of(name, addresses["manager1"]) as manager, removed_afterwards(manager, "it-visualizer"):
        service = manager.services.create(
            "dockersamples/visualizer:stable", name="it-visualizer", constraints=["node.role == manager"],
            mounts=[docker.types.Mount("/var/run/docker.sock", "/var/run/docker.sock", type="bind")],
            endpoint_spec=docker.types.EndpointSpec(ports={8080: (8080, "tcp", "host")}))
        [task] = running_tasks(service, 1)
        node = node_names(manager)[task["NodeID"]]

        def state():
            with _direct.open(f"http://{addresses[node]}:8080/api/state", timeout=5) as response:
                found = json.loads(response.read())
            return found if found["status"] == "ok" else None

        seen = wait_until(state, timeout=60, describe=f"the visualizer on {node}:8080")
        assert seen["lab"] == f"swarm of {node}" and seen["manager"] == node
        assert sorted(n["hostname"] for n in seen["nodes"]) == sorted(addresses)
        assert any(t["service"] == "it-visualizer" and t["node"] == node for t in seen["tasks"])
        with _direct.open(f"http://{addresses[node]}:8080/", timeout=5) as response:
            assert b"/static/app.js" in response.read()
