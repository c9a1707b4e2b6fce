"""Lessons without an engine: every shipped lesson file loads and is valid, the loader refuses
what is wrong with a message naming it, the checks judge swarm states (a small fake manager), and
the meshless rewrite of the tutorials' compose files."""

from __future__ import annotations

import docker.errors
import pytest
import yaml

from orchestrator import meshless
from orchestrator.lessons import checks, model
from orchestrator.lessons.runner import shown_output
from provision import plan as machine
from provision import state
from provision.providers.docker import load_balancer
from provision.spec import load as spec_load

COMPOSE = model.FOLDER / "compose"
LAB = [meshless.NodeFacts(f"manager{i}", "manager") for i in (1, 2, 3)] + [
    meshless.NodeFacts("worker1", "worker"), meshless.NodeFacts("worker2", "worker", {"mem": "max"})]


# -- the lesson files ---------------------------------------------------------------------------


def test_every_tutorial_has_a_valid_lesson():
    lessons = {lesson.name: lesson for lesson in model.load_all()}
    assert set(lessons) == {"edureka-ha", "get-started-swarm", "production-stack", "swarm-basics", "swarm-cluster"}
    sources = {lesson.source.split()[0] for lesson in lessons.values()}
    assert len(sources) == 5, "each of the five tutorials of ../shared/seeds/ has its lesson"
    for lesson in lessons.values():
        assert all(step.explain for step in lesson.steps)


def test_the_tutorials_errors_are_corrected_and_said_so():
    edureka = model.load("edureka-ha")
    worker = next(s for s in edureka.steps if "join-token worker" in s.run)
    assert "join-token node" in worker.corrected
    stop = next(s for s in edureka.steps if s.run.startswith("docker stop"))
    assert stop.on == "task:Angular-App-Container" and "service's name" in stop.corrected
    assert any("npm" in note and "offline" in note for note in edureka.notes)
    cluster = model.load("swarm-cluster")
    constraint = next(s for s in cluster.steps if "--constraint-add" in s.run)
    assert "--container-label-add" in constraint.corrected and "--container-label-add" not in constraint.run


def lesson_text(**changes) -> str:
    data = {"title": "t", "source": "s", "summary": "x",
            "steps": [{"run": "docker node ls", "explain": "nodes", "check": [{"nodes_ready": {"count": 5}}]}]}
    data.update(changes)
    return yaml.safe_dump(data)


@pytest.mark.parametrize("changes, message", [
    ({"steps": []}, "`steps` must be a non-empty list"),
    ({"colour": "red"}, "unknown key(s) colour"),
    ({"steps": [{"run": "x"}]}, "step 1: missing explain"),
    ({"steps": [{"run": "x", "explain": "y", "check": [{"replicas": {"service": "a"}}]}]}, "missing running"),
    ({"steps": [{"run": "x", "explain": "y", "check": [{"teleport": {}}]}]}, "unknown check 'teleport'"),
    ({"steps": [{"run": "x", "explain": "y", "check": [{"http": {"port": 80, "colour": 1}}]}]}, "colour"),
    ({"steps": [{"run": "x", "explain": "y", "node": "worker1", "ssh": "all"}]}, "exclude each other"),
    ({"cleanup": {"volumes": ["a"]}}, "unknown key(s) volumes"),
])
def test_the_loader_names_what_is_wrong(changes, message):
    with pytest.raises(model.LessonError) as raised:
        model.parse("bad", lesson_text(**changes))
    assert message in str(raised.value) and "lesson bad" in str(raised.value)


def test_yaml_s_on_key_would_be_a_boolean_so_the_node_key_is_node():
    with pytest.raises(model.LessonError, match="unknown key"):
        model.parse("bad", "title: t\nsource: s\nsummary: x\nsteps:\n  - {run: a, explain: b, on: worker1}\n")
    assert model.parse("ok", lesson_text(steps=[{"run": "a", "explain": "b", "node": "worker1"}])).steps[0].on == "worker1"


def test_an_unknown_lesson_lists_the_lessons():
    with pytest.raises(model.LessonError) as raised:
        model.load("nope")
    assert "swarm-basics" in raised.value.hint


def test_progress_lines_of_the_cli_are_not_shown():
    out = ("web\noverall progress: 1 out of 2 tasks\n1/2: running\n2/2:  \nverify: Waiting 5 seconds\n"
           "a0591854b649: Layer already exists\nverify: Service web converged")
    assert shown_output(out) == ["web", "verify: Service web converged"]
    token = "docker swarm join --token SWMTKN-1-" + "a" * 50 + "-" + "b" * 25 + " 10.0.0.10:2377"
    assert shown_output(token) == ["docker swarm join --token SWMTKN-<redacted> 10.0.0.10:2377"]


# -- the checks ---------------------------------------------------------------------------------


class FakeService:
    def __init__(self, tasks, attrs=None):
        self._tasks, self.attrs = tasks, attrs or {}

    def tasks(self, filters=None):
        wanted = (filters or {}).get("desired-state")
        return [t for t in self._tasks if wanted is None or t["DesiredState"] == wanted]


class FakeNode:
    def __init__(self, node_id, hostname, role="worker", labels=None, availability="active"):
        self.id = node_id
        self.attrs = {"ID": node_id, "Description": {"Hostname": hostname}, "Status": {"State": "ready"},
                      "Spec": {"Role": role, "Labels": labels or {}, "Availability": availability}}


class FakeManager:
    def __init__(self, services, nodes):
        self._services, self._nodes = services, nodes
        manager = self

        class Services:
            def get(self, name):
                if name not in manager._services:
                    raise docker.errors.NotFound(f"service {name} not found")
                return manager._services[name]

        class Nodes:
            def list(self):
                return list(manager._nodes)

            def get(self, key):
                return next(n for n in manager._nodes if key in (n.id, n.attrs["Description"]["Hostname"]))

        self.services, self.nodes = Services(), Nodes()


def task(node_id, state="running", desired="running", image="nginx:latest@sha256:ab"):
    return {"NodeID": node_id, "DesiredState": desired, "Status": {"State": state},
            "Spec": {"ContainerSpec": {"Image": image}}}


NODES = [FakeNode("n1", "manager1", "manager", availability="drain"), FakeNode("n2", "worker1"),
         FakeNode("n3", "worker2", labels={"mem": "max"})]


def ctx(services) -> checks.Context:
    return checks.Context(FakeManager(services, NODES), "10.0.0.9", {"manager1": "10.0.0.10"})


def test_replicas_count_running_tasks_only():
    web = FakeService([task("n2"), task("n3"), task("n3", state="preparing"), task("n2", "shutdown", "shutdown")])
    assert checks.ask(ctx({"web": web}), "replicas", {"service": "web", "running": 2}) == (
        True, "service web: 2 task(s) running, 2 wanted")
    assert checks.ask(ctx({"web": web}), "replicas", {"service": "web", "running": 3})[0] is False
    assert checks.ask(ctx({}), "replicas", {"service": "web", "running": 1}) == (False, "there is no service web")


def test_placement_drain_and_labels():
    web = FakeService([task("n3"), task("n3")])
    assert checks.ask(ctx({"web": web}), "placed", {"service": "web", "constraint": "node.labels.mem == max"})[0]
    spread = FakeService([task("n2"), task("n3")])
    ok, seen = checks.ask(ctx({"web": spread}), "placed", {"service": "web", "constraint": "node.labels.mem==max"})
    assert not ok and "worker1 do(es) not meet" in seen
    assert checks.ask(ctx({"web": spread}), "no_tasks_on", {"service": "web", "node": "manager1"})[0]
    assert checks.ask(ctx({}), "node_availability", {"node": "manager1", "availability": "drain"})[0]
    assert checks.ask(ctx({}), "node_label", {"node": "worker2", "key": "mem", "value": "max"})[0]
    assert not checks.ask(ctx({}), "node_label", {"node": "worker1", "key": "mem", "value": "max"})[0]


def test_global_counts_active_nodes_only():
    everywhere = FakeService([task("n2"), task("n3")])
    assert checks.ask(ctx({"g": everywhere}), "global_on_every_node", {"service": "g"})[0]  # manager1 is drained
    assert not checks.ask(ctx({"g": FakeService([task("n2")])}), "global_on_every_node", {"service": "g"})[0]


def test_rollback_is_the_update_state_and_the_image():
    rolled = FakeService([task("n2", image="r/testnginx:2.0@sha256:1")], {"UpdateStatus": {"State": "rollback_completed"}})
    c = ctx({"newnginx": rolled})
    assert checks.ask(c, "update_state", {"service": "newnginx", "state": "rollback_completed"})[0]
    assert checks.ask(c, "image", {"service": "newnginx", "image": "r/testnginx:2.0"})[0]
    assert not checks.ask(c, "image", {"service": "newnginx", "image": "r/testnginx:3.0"})[0]


def test_a_replaced_task_is_one_that_ended_on_its_own():
    web = FakeService([task("n2"), task("n3", "shutdown", "shutdown")])
    assert not checks.ask(ctx({"web": web}), "task_replaced", {"service": "web"})[0]
    web = FakeService([task("n2"), task("n3", "failed", "shutdown")])
    assert checks.ask(ctx({"web": web}), "task_replaced", {"service": "web"})[0]


def test_output_and_unanswered_http():
    c = ctx({})
    c.output = "docker swarm join --token SWMTKN-1-abc 10.0.0.10:2377"
    assert checks.ask(c, "output_contains", {"text": "SWMTKN-"})[0]
    c.entry_address = "127.0.0.1"
    ok, seen = checks.ask(c, "http", {"port": 9})  # discard: nothing listens
    assert not ok and "does not answer" in seen


# -- the meshless rewrite -----------------------------------------------------------------------


def test_getstartedlab_without_mesh():
    result = meshless.rewrite((COMPOSE / "getstartedlab.yml").read_text(), LAB)
    compose = yaml.safe_load(result.text)
    web = compose["services"]["web"]
    assert web["ports"] == [{"target": 80, "protocol": "tcp", "published": 80, "mode": "host"}]
    assert all(s["deploy"]["endpoint_mode"] == "dnsrr" for s in compose["services"].values())
    assert web["deploy"]["replicas"] == 5 and web["deploy"]["resources"]["limits"]["memory"] == "50M"
    assert compose["version"] == "3.2" and compose["services"]["redis"]["command"] == "redis-server --appendonly yes"
    assert sorted(r.port for r in result.routes) == [80, 6379, 8080]
    lines = [c.line() for c in result.changes]
    assert "web: port 80:80 ingress -> mode host, routed by the lab's load balancer (no routing mesh: the node " \
           "running a task answers on the port; the load balancer forwards it to every node)" in lines
    assert result.text.startswith(meshless.HEADER) and all(f"#   {line}\n" in result.text for line in lines)


def test_replicas_are_capped_to_the_nodes_a_host_port_fits():
    text = """
services:
  web: {image: a, ports: ["8080:80"], deploy: {replicas: 6}}
  pinned: {image: a, ports: ["81:80"], deploy: {replicas: 3, placement: {constraints: ["node.labels.mem == max"]}}}
  everywhere: {image: a, ports: ["82:80"], deploy: {mode: global}}
  inside: {image: a, deploy: {replicas: 9}}
"""
    result = meshless.rewrite(text, LAB)
    services = yaml.safe_load(result.text)["services"]
    assert services["web"]["deploy"]["replicas"] == 5 and services["pinned"]["deploy"]["replicas"] == 1
    assert services["inside"]["deploy"]["replicas"] == 9 and "replicas" not in services["everywhere"]["deploy"]
    assert "web: replicas 6 -> 5 (a host-mode port fits one task per node, and 5 node(s) may run it)" in [
        c.line() for c in result.changes]


def test_what_already_works_without_mesh_is_kept():
    text = "services:\n  db: {image: a, deploy: {endpoint_mode: dnsrr}, ports: [{target: 5432, published: 5432, mode: host}]}\n"
    result = meshless.rewrite(text, LAB)
    assert result.text == text and result.changes == [] and [r.port for r in result.routes] == [5432]


def test_short_ports_and_unquoted_base_60():
    assert meshless.long_port("127.0.0.1:53:53/udp") == {"target": 53, "protocol": "udp", "published": 53}
    assert meshless.long_port("80") == {"target": 80, "protocol": "tcp"} and meshless.long_port("8000-8010:80") is None
    compose = meshless.load("services: {dns: {image: a, ports: [53:53]}}")
    assert compose["services"]["dns"]["ports"] == ["53:53"]  # not 3233
    with pytest.raises(Exception, match="no `services:`"):
        meshless.load("- a list")


def test_constraints_this_does_not_know_count_every_node():
    assert meshless.eligible(["node.platform.os == linux"], LAB) is None
    assert meshless.eligible(["node.role != manager"], LAB) == 2


def test_the_load_balancer_routes_a_stacks_ports(monkeypatch, tmp_path):
    monkeypatch.setenv("SWARMDECK_HOME", str(tmp_path))
    plan = machine.plan(spec_load.load_spec(None, {}, {"name": "t1"}), "10.199.9.0/24", 1500, shares_kernel=True)
    before = load_balancer.config(plan)
    assert state.write_routes("t1", "getstartedlab", [80, 8080]) and not state.write_routes("t1", "getstartedlab", [8080, 80])
    routed = load_balancer.config(plan)
    assert "frontend route80" in routed and "frontend route8080" in routed and "frontend port8080" not in routed
    assert "frontend port8081" in routed and "mode tcp" in routed
    assert state.write_routes("t1", "getstartedlab", []) and load_balancer.config(plan) == before
