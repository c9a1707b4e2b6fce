"""The visualizer without an engine: snapshots from scripted manager answers, the
problems it reports, the report files it serves, and its HTTP API and event stream."""

from __future__ import annotations

import json
import socketserver
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler

import docker.errors
import pytest

from orchestrator.viz import feed as state
from orchestrator.viz import lab_engines, server
from provision.plan import plan
from provision.spec import load as spec_load

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def node(hostname, role="worker", leader=False, state_="ready", availability="active"):
    attrs = {"ID": f"id-{hostname}", "Description": {"Hostname": hostname},
             "Spec": {"Role": role, "Availability": availability, "Labels": {"zone": "a"}},
             "Status": {"State": state_, "Addr": "10.0.0.1"}}
    if role == "manager":
        attrs["ManagerStatus"] = {"Leader": leader, "Reachability": "reachable"}
    return type("Node", (), {"attrs": attrs})()


def task(slot, node_id, desired="running", actual="running", image="10.0.0.10:5000/swarmdeck/web:2@sha256:ab"):
    return {"ID": f"t{slot}{desired}", "Slot": slot, "NodeID": node_id, "DesiredState": desired,
            "Status": {"State": actual}, "Spec": {"ContainerSpec": {"Image": image}}}


class FakeService:
    def __init__(self, name, tasks, replicas=3):
        self.name, self._tasks = name, tasks
        self.attrs = {"Spec": {"Mode": {"Replicated": {"Replicas": replicas}}}}

    def tasks(self):
        return self._tasks


class FakeManager:
    def __init__(self, nodes=(), services=(), error=None):
        self._nodes, self._services, self.error = list(nodes), list(services), error
        self.nodes = type("N", (), {"list": self._list_nodes})()
        self.services = type("S", (), {"list": lambda _: self._services})()

    def _list_nodes(self, *_):
        if self.error:
            raise self.error
        return self._nodes


def lab_plan():
    return plan(spec_load.load_spec(None, {}, {"name": "vizlab"}), "10.199.9.0/24", 1500, shares_kernel=True)


def test_snapshot_shows_roles_and_only_tasks_meant_to_run():
    manager = FakeManager(
        [node("manager1", "manager", leader=True), node("manager2", "manager"), node("worker1", state_="down")],
        [FakeService("web", [task(1, "id-worker1", desired="shutdown"), task(1, "id-manager2"),
                             task(2, "id-manager1", actual="starting")])])
    snap = state.snapshot(manager, {"manager1": "10.199.9.10:2376"})
    roles = {n["hostname"]: n["role"] for n in snap["nodes"]}
    assert roles == {"manager1": "leader", "manager2": "manager", "worker1": "worker"}
    assert snap["nodes"][0]["engine"] == "10.199.9.10:2376" and snap["nodes"][2]["state"] == "down"
    assert [(t["node"], t["slot"], t["state"], t["version"]) for t in snap["tasks"]] == [
        ("manager2", 1, "running", "2"), ("manager1", 2, "starting", "2")]
    assert snap["services"] == [{"name": "web", "mode": "replicated", "replicas": 3, "colour": state.colour("web")}]
    assert state.colour("web") != state.colour("db")


def test_no_manager_problems_tell_an_election_from_a_lost_quorum():
    managers = ["manager1", "manager2", "manager3"]
    assert state.no_manager_problem(["manager2", "manager3"], managers)[0] == "electing"
    status, message = state.no_manager_problem(["manager3"], managers)
    assert status == "no-quorum" and "majority (2 of 3)" in message
    assert state.no_manager_problem([], managers)[0] == "unreachable"


def test_the_feed_moves_to_another_manager_and_keeps_the_last_state(monkeypatch):
    feed = state.SwarmFeed(lab_engines.LabEngines(lab_plan()))
    good = FakeManager([node("manager1", "manager", leader=True), node("manager2", "manager")])
    answers = {"manager1": good, "manager2": good}
    monkeypatch.setattr(feed, "clients", answers)
    first = feed.refresh()
    assert first["status"] == "ok" and first["manager"] == "manager1" and not first["stale"]
    answers["manager1"] = FakeManager(error=docker.errors.DockerException("connection refused"))
    assert feed.refresh()["manager"] == "manager2"
    leaderless = FakeManager(error=docker.errors.APIError("503", explanation="The swarm does not have a leader."))
    answers.update({name: leaderless for name in ("manager1", "manager2")})
    answers.update({n.name: FakeManager(error=docker.errors.DockerException("down")) for n in feed.engines.plan.nodes
                    if n.name not in answers})
    lost = feed.refresh()
    assert lost["status"] == "electing" and lost["stale"] and len(lost["nodes"]) == 2  # the last state seen
    assert feed.version == 3


def test_report_files_are_served_only_by_their_own_names(swarmdeck_home):
    folder = swarmdeck_home / "labs" / "vizlab" / "reports"
    folder.mkdir(parents=True)
    (folder / "failover-20261122-010203.json").write_text(json.dumps({"demo": "failover", "verdict": "pass"}))
    (folder / "failover-20261122-010203.png").write_bytes(b"\x89PNG")
    (folder / "live.json").write_text("{}")
    assert state.report_file("vizlab", "failover-20261122-010203.png") is not None
    for bad in ("../spec.json", "live.json", "failover-20261122-010203.txt", "x/../../etc.png"):
        assert state.report_file("vizlab", bad) is None
    assert state.reports("vizlab") == [{"name": "failover-20261122-010203", "demo": "failover", "verdict": "pass",
                                        "started_at": None, "plot": "/reports/failover-20261122-010203.png"}]


@pytest.fixture()
def running_server(monkeypatch):
    feed = state.SwarmFeed(lab_engines.LabEngines(lab_plan()))
    answers = {n.name: FakeManager([node("manager1", "manager", leader=True)]) for n in feed.engines.plan.nodes}
    monkeypatch.setattr(feed, "clients", answers)
    feed.refresh()
    httpd = server.VizServer(("127.0.0.1", 0), feed)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", feed, answers
    feed._stop.set()
    with feed._changed:
        feed._changed.notify_all()
    httpd.shutdown()
    httpd.server_close()


def test_the_api_serves_the_page_state_and_nothing_else(running_server):
    url, _, _ = running_server
    with _direct.open(url + "/", timeout=5) as response:
        assert b"/static/app.js" in response.read()
    with _direct.open(url + "/api/state", timeout=5) as response:
        assert json.load(response)["nodes"][0]["hostname"] == "manager1"
    for path in ("/static/../tasks.py", "/nope", "/reports/../../spec.json"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            _direct.open(url + path, timeout=5)
        assert caught.value.code == 404


def test_the_event_stream_sends_each_new_snapshot(running_server):
    url, feed, answers = running_server
    with _direct.open(url + "/api/events", timeout=10) as stream:
        first = _next_event(stream)
        assert first["nodes"][0]["role"] == "leader"
        answers["manager1"] = FakeManager([node("manager1", "manager", leader=True), node("worker9")])
        feed.refresh()
        second = _next_event(stream)
        assert [n["hostname"] for n in second["nodes"]] == ["manager1", "worker9"]


def _next_event(stream) -> dict:
    data = None
    for raw in stream:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            data = json.loads(line[len("data: "):])
        elif line == "" and data is not None:
            return data
    raise AssertionError("the stream ended")


def test_the_entry_point_is_sent_as_data(monkeypatch):
    monkeypatch.setattr(lab_engines.entrypoint.ipvs, "available", lambda: False)
    feed = state.SwarmFeed(lab_engines.LabEngines(lab_plan()))
    monkeypatch.setattr(feed, "clients", {"manager1": FakeManager([node("manager1", "manager", leader=True)])})
    assert feed.refresh()["entry_point"] == {"kind": "load-balancer", "address": "10.199.9.9", "ports": [8080, 8081]}


def test_without_a_port_the_visualizer_takes_the_first_free_one_from_8000():
    import socket

    from orchestrator.viz import control
    first = control.free_port("127.0.0.1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first))
        assert control.free_port("127.0.0.1") > first


class _UnixEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _EngineAPI(BaseHTTPRequestHandler):
    """A manager's engine API as the docker SDK asks it over /var/run/docker.sock."""

    protocol_version = "HTTP/1.1"
    answers: dict = {}

    def log_message(self, *_):
        pass

    def do_GET(self):  # noqa: N802
        path = urllib.parse.urlparse(self.path).path.split("/", 2)[2]  # drop /v1.41/
        body = json.dumps(self.answers[path]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_the_stand_in_feed_shows_the_swarm_of_the_engine_behind_its_socket(tmp_path):
    """The dockersamples/visualizer stand-in: one engine, asked through its socket, no lab."""
    manager, worker = node("manager1", "manager", leader=True).attrs, node("worker1").attrs
    _EngineAPI.answers = {
        "info": {"Name": "manager1"}, "nodes": [manager, worker],
        "services": [{"ID": "s1", "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 2}}}}],
        "tasks": [task(1, "id-worker1", image="gordon/get-started:part2@sha256:ab"), task(2, "id-manager1")],
    }
    socket_path = str(tmp_path / "docker.sock")
    engine = _UnixEngine(socket_path, _EngineAPI)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    try:
        feed = state.SwarmFeed(state.LocalEngine(socket_path))
        snapshot = feed.refresh()
        assert snapshot["lab"] == "swarm of manager1" and snapshot["status"] == "ok"
        assert snapshot["manager"] == "manager1"
        assert [(n["hostname"], n["role"], n["engine"]) for n in snapshot["nodes"]] == [
            ("manager1", "leader", "10.0.0.1"), ("worker1", "worker", "10.0.0.1")]
        assert [(t["service"], t["node"], t["version"]) for t in snapshot["tasks"]] == [
            ("web", "worker1", "part2"), ("web", "manager1", "2")]
        assert (snapshot["registry"], snapshot["entry_point"], snapshot["demo"], snapshot["reports"]) == (
            None, None, None, [])
        feed.stop()
    finally:
        engine.shutdown()
        engine.server_close()


def test_a_down_node_keeps_the_tasks_last_seen_on_it_and_since_when_it_is_down():
    def snap(worker_state, tasks):
        return {"nodes": [{"hostname": "manager1", "state": "ready"}, {"hostname": "worker1", "state": worker_state}],
                "services": [], "tasks": tasks}

    web1 = {"id": "t1", "service": "web", "node": "worker1", "state": "running"}
    web2 = {"id": "t2", "service": "web", "node": "manager1", "state": "running"}
    memory: dict = {}
    ready = state.remember_down_nodes(snap("ready", [web1, web2]), memory, now=100.0)
    assert [(n["last_tasks"], n["down_since"]) for n in ready["nodes"]] == [([], None), ([], None)]
    # worker1 is down and Swarm still lists its task there: shown as it is, not twice
    down = state.remember_down_nodes(snap("down", [web1, web2]), memory, now=110.0)
    assert down["nodes"][1]["last_tasks"] == [] and down["nodes"][1]["down_since"] == 110.0
    # Swarm runs it elsewhere: the node keeps it as a last task; the time it went down stays
    moved = {**web1, "id": "t3", "node": "manager1"}
    later = state.remember_down_nodes(snap("down", [web2, moved]), memory, now=125.0)
    assert later["nodes"][1]["last_tasks"] == [web1] and later["nodes"][1]["down_since"] == 110.0
    again = state.remember_down_nodes(snap("down", [web2, moved]), memory, now=126.0)
    assert again == later  # nothing changed: no new snapshot for the page
    back = state.remember_down_nodes(snap("ready", [web2, moved]), memory, now=130.0)
    assert back["nodes"][1]["last_tasks"] == [] and back["nodes"][1]["down_since"] is None
    gone = state.remember_down_nodes(snap("down", [web2, moved]), memory, now=140.0)
    assert gone["nodes"][1]["last_tasks"] == [] and gone["nodes"][1]["down_since"] == 140.0  # it ran nothing


def test_the_feed_sends_a_dead_nodes_last_tasks(monkeypatch):
    feed = state.SwarmFeed(lab_engines.LabEngines(lab_plan()))
    worker = node("worker1")
    manager = FakeManager([node("manager1", "manager", leader=True), worker],
                          [FakeService("web", [task(1, "id-worker1")])])
    monkeypatch.setattr(feed, "clients", {"manager1": manager})
    assert feed.refresh()["nodes"][1]["last_tasks"] == []
    worker.attrs["Status"]["State"] = "down"
    manager._services = [FakeService("web", [task(1, "id-worker1", desired="shutdown"), task(2, "id-manager1")])]
    down = feed.refresh()["nodes"][1]
    assert [t["id"] for t in down["last_tasks"]] == ["t1running"] and down["down_since"] > 0



def test_the_feed_carries_the_lesson_step_running(monkeypatch, tmp_path):
    from provision import state as lab_state
    monkeypatch.setenv("SWARMDECK_HOME", str(tmp_path))
    engines = lab_engines.LabEngines(lab_plan())
    assert engines.facts()["lesson"] is None
    step = {"lesson": "swarm-basics", "step": 3, "total": 8, "run": "docker swarm join-token worker",
            "explain": "the same for a worker", "status": "running"}
    lab_state.write_lesson(engines.lab, step)
    assert engines.facts()["lesson"] == step
    lab_state.write_lesson(engines.lab, None)
    assert engines.facts()["lesson"] is None
    engines.close()
