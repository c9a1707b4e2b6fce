"""Each demo runs against a real lab; its verdict is checked again from what the probe
recorded and from what Swarm reports afterwards, never from the demo's printout. Each
demo's plot is copied to artifacts/demos/ (or $SWARMDECK_ARTIFACTS/demos)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.labs import a_lab, cli, leader_client, run_demo_report

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_lab(engine):
    with a_lab("demo") as name:
        yield name


def run_demo(lab: str, demo: str, *args: str) -> dict:
    result, report = run_demo_report(lab, demo, *args)
    assert (result.returncode == 0) == (report["verdict"] == "pass"), result.stderr
    assert report["verdict"] == "pass", result.stderr
    return report


def event_time(report: dict, fragment: str) -> float:
    return next(e["t"] for e in report["events"] if fragment in e["text"])


def samples_between(report: dict, start: float, end: float) -> list[dict]:
    return [s for s in report["samples"] if start <= s["t"] <= end]


def swarm(lab: str) -> dict[str, dict]:
    client = leader_client(lab)
    try:
        nodes = {n.attrs["Description"]["Hostname"]: n.attrs for n in client.nodes.list()}
        return {"nodes": nodes, "services": [s.name for s in client.services.list()]}
    finally:
        client.close()


def test_failover(demo_lab):
    report = run_demo(demo_lab, "failover", "--node", "worker1")
    killed, down = event_time(report, "kill worker1"), event_time(report, "marks worker1 Down")
    moved = event_time(report, "tasks run on the other nodes")
    assert killed < down < moved
    outage = samples_between(report, killed, moved)
    assert sum(s["ok"] for s in outage) > 0  # the probe kept getting answers
    assert all(s["node"] != "worker1" for s in samples_between(report, down + 1, moved) if s["ok"])
    after = swarm(demo_lab)
    assert after["nodes"]["worker1"]["Status"]["State"] == "ready"
    assert "demo-failover" not in after["services"]


def test_leader(demo_lab):
    before = {h for h, n in swarm(demo_lab)["nodes"].items() if (n.get("ManagerStatus") or {}).get("Leader")}
    report = run_demo(demo_lab, "leader")
    killed = event_time(report, "kill the leader")
    assert sum(s["ok"] for s in samples_between(report, killed, killed + 30)) > 0
    after = swarm(demo_lab)["nodes"]
    leaders = {h for h, n in after.items() if (n.get("ManagerStatus") or {}).get("Leader")}
    assert len(leaders) == 1 and leaders != before  # leadership moved and stayed moved
    assert all(n["ManagerStatus"]["Reachability"] == "reachable" for n in after.values() if n["Spec"]["Role"] == "manager")
    assert report["figures"]["new leader elected after"] > 0


def test_rolling_update(demo_lab):
    report = run_demo(demo_lab, "rolling-update")
    start, done = event_time(report, "update to swarmdeck/web:2"), event_time(report, "every task runs version 2")
    during = samples_between(report, start, done)
    assert during and all(s["ok"] for s in during)  # zero failed probe requests
    assert {s["version"] for s in during} <= {"1", "2"}
    broken = event_time(report, "update to swarmdeck/web:3")
    assert "3" not in {s["version"] for s in samples_between(report, broken, broken + 60) if s["ok"]}
    seen = {v for entry in report["versions"] for v, n in entry["running"].items() if n}
    assert seen == {"1", "2"}  # the plot's series: v1 and v2 ran, v3 never did
    assert any(entry["starting"].get("3") for entry in report["versions"] if entry["t"] >= broken)
    assert all(s["duration"] is not None for s in report["samples"])
    assert "demo-rolling" not in swarm(demo_lab)["services"]


def test_scale_and_drain(demo_lab):
    scale = run_demo(demo_lab, "scale")
    assert [r["running"] for r in scale["replicas"]][-1] == 3
    assert max(r["running"] for r in scale["replicas"]) == 9
    run_demo(demo_lab, "drain")
    assert swarm(demo_lab)["nodes"]["manager1"]["Spec"]["Availability"] == "active"


def test_demo_refuses_a_manager_as_failover_victim(demo_lab):
    result = cli("demo.failover", "--lab", demo_lab, "--node", "manager2", check=False)
    assert result.returncode == 1 and "manager2 is not a worker" in result.stderr


def test_constraints_and_global(demo_lab):
    constraints = run_demo(demo_lab, "constraints")
    assert [c["passed"] for c in constraints["checks"]] == [True, True]
    assert "mem" not in swarm(demo_lab)["nodes"]["worker2"]["Spec"].get("Labels", {})
    run_demo(demo_lab, "global")
    after = swarm(demo_lab)
    assert after["nodes"]["worker2"]["Status"]["State"] == "ready" and "demo-global" not in after["services"]


def test_quorum(demo_lab):
    report = run_demo(demo_lab, "quorum")
    lost = event_time(report, "kill manager2 and manager3")
    refused = event_time(report, "is refused")
    assert sum(s["ok"] for s in samples_between(report, lost, refused)) > 0  # tasks served without a majority
    nodes = swarm(demo_lab)["nodes"]
    managers = {h: n for h, n in nodes.items() if n["Spec"]["Role"] == "manager"}
    assert sorted(managers) == ["manager1", "manager2", "manager3"]
    assert all(n["ManagerStatus"]["Reachability"] == "reachable" for n in managers.values())
    assert all(n["Status"]["State"] == "ready" for n in nodes.values())


def test_partition(demo_lab, engine):
    report = run_demo(demo_lab, "partition", "--node", "worker1")
    assert report["figures"]["duplicates while partitioned"] >= 1
    cut, healed = event_time(report, "cut worker1 off"), event_time(report, "heal the partition")
    assert sum(s["ok"] for s in samples_between(report, cut, healed)) > 0
    container = engine.containers.get(f"{demo_lab}-worker1")
    assert f"{demo_lab}-net" in container.attrs["NetworkSettings"]["Networks"]  # healed
    assert swarm(demo_lab)["nodes"]["worker1"]["Status"]["State"] == "ready"


def test_mesh_and_the_workshop_sequence(demo_lab):
    result = cli("demo.all", "--lab", demo_lab, "--only", "scale", "--only", "mesh")
    assert "demo.all on lab" in result.stdout and result.stdout.count("PASS") == 2
    reports = Path(os.environ["SWARMDECK_HOME"]) / "labs" / demo_lab / "reports"
    mesh = json.loads(sorted(reports.glob("mesh-*.json"))[-1].read_text())
    assert mesh["verdict"] == "pass" and len(mesh["checks"]) >= 2
    unknown = cli("demo.all", "--lab", demo_lab, "--only", "dance", check=False)
    assert unknown.returncode == 2 and "unknown demo(s) dance" in unknown.stderr
