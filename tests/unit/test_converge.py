"""Waiting for services: convergence and Swarm's failure reasons, against a scripted fake of the API."""

from __future__ import annotations

import pytest

from orchestrator import converge
from provision.errors import ConvergenceError, WaitTimeout
from provision.progress import RecordingReporter

NODES = {"n1": "manager1", "n2": "worker1", "n3": "worker2"}


def node(node_id: str, state: str = "ready") -> dict:
    return {"ID": node_id, "Description": {"Hostname": NODES[node_id]}, "Status": {"State": state}}


def service(name="web", replicas: int | None = 3, update: str | None = None, message: str = "",
            monitor: float | None = None, constraints=()) -> dict:
    spec = {"Name": name, "Mode": {"Global": {}} if replicas is None else {"Replicated": {"Replicas": replicas}},
            "TaskTemplate": {"Placement": {"Constraints": list(constraints)}}}
    if monitor is not None:
        spec["UpdateConfig"] = {"Monitor": int(monitor * 1e9)}
    found = {"ID": f"id-{name}", "Spec": spec}
    if update:
        found["UpdateStatus"] = {"State": update, "Message": message}
    return found


def task(task_id: str, slot: int | None, node_id: str, state: str, desired: str = "running", err: str = "",
         message: str = "", exit_code: int | None = None) -> dict:
    status = {"State": state, "Message": message or state}
    if err:
        status["Err"] = err
    if exit_code is not None:
        status["ContainerStatus"] = {"ExitCode": exit_code}
    found = {"ID": task_id, "DesiredState": desired, "Status": status, "NodeID": node_id}
    if slot is not None:
        found["Slot"] = slot
    return found


class FakeSwarm:
    """A manager's API as a timeline: from time T on, services and tasks look like frame T.

    ``clock``/``sleep`` drive the wait, so a test runs in no time and knows when it ended.
    """

    def __init__(self, timeline: list[tuple[float, dict, list[dict]]], nodes: list[dict] | None = None):
        self.timeline = sorted(timeline, key=lambda frame: frame[0])
        self.nodes_now = nodes or [node(n) for n in NODES]
        self.now = 0.0
        self.api = self
        self.task_queries: list[dict] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def _frame(self):
        return [f for f in self.timeline if f[0] <= self.now][-1]

    def inspect_service(self, name: str) -> dict:
        return self._frame()[1]

    def tasks(self, filters: dict) -> list[dict]:
        self.task_queries.append(filters)
        return self._frame()[2]

    def nodes(self) -> list[dict]:
        return self.nodes_now


def run(swarm: FakeSwarm, watch: converge.Watch | None = None, timeout: float = 120, reporter=None):
    watch = watch or converge.Watch("web")
    reporter = reporter if reporter is not None else RecordingReporter()
    return converge.wait(swarm, [watch], reporter, timeout=timeout, clock=swarm.clock, sleep=swarm.sleep)[0]


STARTING = [task("a", 1, "n1", "pending"), task("b", 2, "n2", "pending"), task("c", 3, "", "pending")]
RUNNING = [task("a", 1, "n1", "running"), task("b", 2, "n2", "running"), task("c", 3, "n3", "running")]


def test_waits_until_every_task_runs_and_stays_up_for_the_monitor_period():
    swarm = FakeSwarm([(0, service(), STARTING),
                       (1, service(), [*RUNNING[:2], task("c", 3, "n3", "starting")]),
                       (2, service(), RUNNING)])
    reporter = RecordingReporter()
    progress = run(swarm, reporter=reporter)
    assert progress.converged and progress.running == ("manager1", "worker1", "worker2")
    assert swarm.now >= 2 + converge.SETTLE  # 3/3 at 2 s, then 5 s to see them stay up
    assert reporter.kinds("info")[-1] == "web: 3/3 running (manager1, worker1, worker2)"
    assert "web: 0/3 running; pending: manager1, worker1, 1 unassigned" in reporter.kinds("info")
    assert all(q == {"service": "id-web", "_up-to-date": "true"} for q in swarm.task_queries)


def test_the_update_monitor_sets_how_long_converged_tasks_must_stay_up():
    swarm = FakeSwarm([(0, service(monitor=1), RUNNING)])
    run(swarm)
    assert 1 <= swarm.now < 2


def test_one_line_per_change_not_one_per_poll():
    swarm = FakeSwarm([(0, service(), STARTING), (30, service(), RUNNING)])
    reporter = RecordingReporter()
    run(swarm, reporter=reporter)
    assert reporter.kinds("info") == ["web: 0/3 running; pending: manager1, worker1, 1 unassigned",
                                      "web: 3/3 running (manager1, worker1, worker2)"]


def test_task_states_alone_are_shown_at_most_every_few_seconds():
    frames = [(t / 10, service(), [task("a", 1, "n1", state)]) for t, state in
              enumerate(["assigned", "accepted", "preparing", "ready", "starting"])]
    swarm = FakeSwarm([*frames, (10, service(replicas=1), [task("a", 1, "n1", "running")])])
    reporter = RecordingReporter()
    run(swarm, reporter=reporter)
    lines = reporter.kinds("info")
    assert lines[0] == "web: 0/3 running; assigned: manager1" and len(lines) <= 3
    assert lines[-1] == "web: 1/1 running (manager1)"


def test_a_task_that_fails_after_converging_resets_the_monitor_period():
    crashed = [*RUNNING[:2], task("c", 3, "n3", "failed", desired="shutdown", err="task: non-zero exit (1)"),
               task("d", 3, "n3", "starting")]
    swarm = FakeSwarm([(0, service(), RUNNING), (3, service(), crashed),
                       (4, service(), [*RUNNING[:2], crashed[2], task("d", 3, "n3", "running")])])
    run(swarm)
    assert swarm.now >= 4 + converge.SETTLE


def test_rejected_tasks_fail_with_swarms_reason():
    no_image = "No such image: 10.0.0.10:5000/swarmdeck/web:9"
    swarm = FakeSwarm([(0, service(), STARTING),
                       (1, service(), [task(i, s, n, "rejected", desired="ready", err=no_image, message="preparing")
                                       for i, s, n in (("a", 1, "n1"), ("b", 2, "n2"), ("c", 3, "n3"))])])
    reporter = RecordingReporter()
    with pytest.raises(ConvergenceError) as caught:
        run(swarm, reporter=reporter)
    text = str(caught.value)
    assert "service web cannot run its tasks: 3 failed" in text
    assert f"{no_image} (manager1, worker1, worker2)" in text and "0/3 running" in text
    assert "service.ps web" in caught.value.hint and "service.rm web" in caught.value.hint
    assert f"web: worker1: {no_image}" in reporter.kinds("warn")
    assert swarm.now < 2  # at once: no waiting for a timeout


def test_one_failure_is_retried_before_it_counts():
    swarm = FakeSwarm([(0, service(replicas=1), [task("a", 1, "n1", "failed", desired="shutdown",
                                                        err="task: non-zero exit (1)"), task("b", 1, "n1", "ready")]),
                       (2, service(replicas=1), [task("b", 1, "n1", "running")])])
    assert run(swarm).running == ("manager1",)


def test_a_crash_loop_fails_once_swarms_retry_failed_too():
    exit_1 = "task: non-zero exit (1)"
    swarm = FakeSwarm([(0, service(replicas=1), [task("a", 1, "n2", "failed", "shutdown", exit_1),
                                                 task("b", 1, "n2", "ready", "ready")]),
                       (6, service(replicas=1), [task("a", 1, "n2", "failed", "shutdown", exit_1),
                                                 task("b", 1, "n2", "failed", "shutdown", exit_1),
                                                 task("c", 1, "n2", "ready", "ready")])])
    with pytest.raises(ConvergenceError, match=r"2 failed[\s\S]*Swarm says: task: non-zero exit \(1\) \(worker1\)$"):
        run(swarm)


def test_failures_from_before_the_change_are_old_news():
    old = task("old", 1, "n1", "failed", desired="shutdown", err="task: non-zero exit (1)")
    older = task("older", 2, "n2", "rejected", desired="shutdown", err="No such image: x")
    swarm = FakeSwarm([(0, service(), [old, older, *RUNNING])])
    assert run(swarm, converge.Watch("web", seen=frozenset({"old", "older"}))).converged


def test_no_suitable_node_fails_after_the_patience_with_the_schedulers_reason():
    reason = "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    swarm = FakeSwarm([(0, service(replicas=1), [task("a", 1, "", "pending", err=reason)])])
    with pytest.raises(ConvergenceError) as caught:
        run(swarm)
    assert "has tasks that no node can take" in str(caught.value) and f"Swarm says: {reason}" in str(caught.value)
    assert converge.PATIENCE <= swarm.now < converge.PATIENCE + 1


def test_a_pending_task_that_finds_a_node_in_time_is_fine():
    port = "no suitable node (host-mode port already in use on 1 node)"
    swarm = FakeSwarm([(0, service(replicas=1), [task("a", 1, "", "pending", err=port)]),
                       (4, service(replicas=1), [task("a", 1, "n3", "running")])])
    assert run(swarm).running == ("worker2",)


def test_an_update_that_swarm_paused_fails_with_its_message_and_the_tasks_end():
    message = "update paused due to failure or early termination of task " + "w" * 25
    ended = task("w" * 25, 1, "n2", "complete", desired="shutdown", message="finished", exit_code=0)
    swarm = FakeSwarm([(0, service(update="updating"), [task("n", 1, "n1", "starting")]),
                       (2, service(update="paused", message=message), [ended, task("r", 1, "n2", "ready")])])
    with pytest.raises(ConvergenceError) as caught:
        run(swarm, converge.Watch("web", seen=frozenset({"o1", "o2"})))
    text = str(caught.value)
    assert text.startswith(f"Swarm paused the update of service web: {message}")
    assert "task wwwwwwwwwwww: complete (finished), exit code 0 (worker1)" in text


def test_failed_tasks_during_an_update_are_left_to_swarms_update_monitor():
    failing = [task(f"f{i}", i, "n1", "failed", desired="shutdown", err="task: non-zero exit (1)") for i in (1, 2, 3)]
    swarm = FakeSwarm([(0, service(update="updating"), failing),
                       (5, service(update="rollback_started", message="update rolled back due to failure"), failing),
                       (9, service(update="rollback_completed", message="rollback completed"), RUNNING)])
    with pytest.raises(ConvergenceError, match="the update of service web failed and Swarm rolled it back: "
                                               "rollback completed"):
        run(swarm)
    assert swarm.now >= 9


def test_an_update_completes_when_swarm_says_so_and_every_new_task_runs():
    swarm = FakeSwarm([(0, service(), []),  # Swarm has not started the update yet: no up-to-date task
                       (1, service(update="updating"), [task("a", 1, "n1", "running")]),
                       (4, service(update="updating"), RUNNING),
                       (6, service(update="completed", message="update completed"), RUNNING)])
    reporter = RecordingReporter()
    run(swarm, reporter=reporter)
    assert 6 <= swarm.now < 7  # Swarm monitored the new tasks itself: no second monitor period
    assert "web: 1/3 updated (manager1)" in reporter.kinds("info")


def test_a_rollback_waits_for_rollback_completed():
    swarm = FakeSwarm([(0, service(update="rollback_started", message="manually requested rollback"), RUNNING[:1]),
                       (3, service(update="rollback_completed", message="rollback completed"), RUNNING)])
    reporter = RecordingReporter()
    run(swarm, converge.Watch("web", rollback=True), reporter=reporter)
    assert 3 <= swarm.now < 4
    assert "web: Swarm rolls back: manually requested rollback" in reporter.kinds("info")


def test_a_paused_rollback_fails():
    swarm = FakeSwarm([(0, service(update="rollback_paused", message="rollback paused due to failure"), [])])
    with pytest.raises(ConvergenceError, match="Swarm paused the rollback of service web: rollback paused"):
        run(swarm, converge.Watch("web", rollback=True))


def test_the_timeout_names_what_was_awaited_and_the_last_state():
    swarm = FakeSwarm([(0, service(), [RUNNING[0], task("b", 2, "n2", "preparing"), task("c", 3, "n3", "preparing")])])
    with pytest.raises(WaitTimeout) as caught:
        run(swarm, timeout=30)
    text = str(caught.value)
    assert "timed out after 30s waiting for service web to converge" in text
    assert "last seen: web: 1/3 running (manager1); preparing: worker1, worker2" in text
    assert "service.ps web" in caught.value.hint


def test_global_desired_is_what_swarm_means_to_run():
    restarting = [task("a", None, "n1", "running"), task("b", None, "n2", "running"),
                  task("c", None, "n3", "failed", desired="shutdown", err="task: non-zero exit (1)"),
                  task("d", None, "n3", "ready", desired="ready")]  # waits out the restart delay
    progress = converge.observe(service(replicas=None), restarting, [node(n) for n in NODES])
    assert progress.desired == 3 and len(progress.running) == 2 and not progress.converged
    two_nodes = converge.observe(service(replicas=None), restarting[:2], [node(n) for n in NODES])
    assert two_nodes.desired == 2 and two_nodes.converged  # a constraint that two nodes meet


def test_a_global_service_that_no_node_takes_fails_with_its_constraints():
    swarm = FakeSwarm([(0, service(replicas=None, constraints=["node.labels.zone==x"]), [])])
    with pytest.raises(ConvergenceError, match=r"no task of global service web: .*\(node.labels.zone==x\)"):
        run(swarm)


def test_tasks_on_a_down_node_do_not_count():
    nodes = [node("n1"), node("n2"), node("n3", "down")]
    progress = converge.observe(service(), RUNNING, nodes)
    assert progress.running == ("manager1", "worker1") and not progress.converged


def test_the_task_swarm_means_to_run_counts_for_a_slot():
    start_first = [task("old", 1, "n1", "running", desired="shutdown"), task("new", 1, "n2", "starting")]
    progress = converge.observe(service(replicas=1), start_first, [node(n) for n in NODES])
    assert progress.running == () and progress.waiting == (("starting", "worker1"),)
    scaled_down = converge.observe(service(replicas=1), [RUNNING[0], task("b", 2, "n2", "running", "shutdown")],
                                   [node(n) for n in NODES])
    assert scaled_down.converged and scaled_down.running == ("manager1",)


def test_several_services_are_waited_for_together():
    other = service("db", replicas=1)
    timeline = [(0, service(), STARTING), (2, service(), RUNNING)]
    swarm = FakeSwarm(timeline)
    frames = {"web": timeline, "db": [(0, other, [task("x", 1, "n1", "running")])]}
    swarm.inspect_service = lambda name: [f for f in frames[name] if f[0] <= swarm.now][-1][1]
    swarm.tasks = lambda filters: [f for f in frames[filters["service"].removeprefix("id-")] if f[0] <= swarm.now][-1][2]
    watches = [converge.Watch("web"), converge.Watch("db")]
    done = converge.wait(swarm, watches, RecordingReporter(), timeout=60, clock=swarm.clock, sleep=swarm.sleep)
    assert [p.service for p in done] == ["web", "db"] and all(p.converged for p in done)


def test_default_timeout_grows_with_the_rolling_update():
    small = converge.default_timeout(service(replicas=3))
    spec = service(replicas=6)
    spec["Spec"]["UpdateConfig"] = {"Parallelism": 1, "Delay": int(10e9)}
    assert small == converge.BASE_TIMEOUT + 3 * converge.SETTLE
    assert converge.default_timeout(spec) == converge.BASE_TIMEOUT + 6 * (10 + converge.SETTLE)
