"""Waiting for services to converge, as `docker service create/update/scale` do without --detach.

It reads what the docker CLI reads (cli/command/service/progress): the service, its up-to-date
tasks (the manager's ``_up-to-date`` filter: tasks whose spec is the service's current one) and
the nodes. One task counts per replica slot (per node for a global service): the one Swarm
means to run, as the CLI picks it. The CLI waits forever while a task cannot start; here
Swarm's own reason ends the wait instead:

- an update that Swarm paused, or rolled back after a failure (``UpdateStatus``);
- a task that waits for a node with the scheduler's error ("no suitable node (...)", a
  host-mode port in use) for ``PATIENCE`` seconds;
- failed or rejected tasks ("No such image: ...", a non-zero exit) as many as the service
  runs (at least two: Swarm's retry failed too), outside an update, which Swarm judges itself.

Converged means every desired task running for the service's update monitor (5 s by
default, the CLI's "verify" step), or at once when Swarm has just completed an update or a
rollback, which it monitored itself.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import docker
import docker.errors

from provision import hints
from provision.errors import ConvergenceError, LabError
from provision.plan import LabPlan
from provision.progress import Reporter
from provision.wait import NotYet, wait_until

STATES = ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running",
          "complete", "shutdown", "failed", "rejected")
ORDER = {state: number for number, state in enumerate(STATES, 1)}
FAILED = ("failed", "rejected")
SETTLE = 5.0  # Swarm's default update monitor: converged tasks must stay up this long
PATIENCE = 10.0  # seconds a task may wait for a node, with the scheduler's error, before that error is the verdict
BASE_TIMEOUT = 120.0
NANO = 1e9
UPDATING = ("updating", "rollback_started")
UNASSIGNED = ""  # the host of a task that waits for a node
TASK_ID = re.compile(r"\btask ([a-z0-9]{25})\b")
QUIET = 5.0  # seconds: a change of a task's own state (preparing, starting) is shown at most this often


def meant_to_run(task: dict) -> bool:
    """Swarm means to run the task: its desired state is running or before it (``ready`` while it restarts)."""
    return ORDER.get(task.get("DesiredState", ""), 99) <= ORDER["running"]


def current_tasks(tasks: Iterable[dict], key: Callable[[dict], object]) -> dict:
    """The task that counts for each slot (or node): the lowest desired state wins, then the lowest
    observed state (with start-first updates two tasks share a slot), as the docker CLI picks it."""
    chosen: dict = {}
    for task in tasks:
        desired, state = ORDER.get(task.get("DesiredState", "")), ORDER.get(task["Status"].get("State", ""))
        if desired is None or state is None:
            continue
        existing = chosen.get(key(task))
        if existing is not None:
            old_desired, old_state = ORDER[existing["DesiredState"]], ORDER[existing["Status"]["State"]]
            if old_desired < desired or (old_desired == desired and old_state <= state):
                continue
        chosen[key(task)] = task
    return chosen


def reason(task: dict) -> str:
    """What Swarm says about a task that does not run: its error, else (for a failed one) its message."""
    status = task.get("Status") or {}
    if status.get("Err"):
        return " ".join(status["Err"].split())
    if status.get("State") in FAILED:
        return status.get("Message", "") or status["State"]
    return ""


def ending(task: dict) -> str:
    """How a task ended: ``task abc: complete (finished), exit code 0``."""
    status = task.get("Status") or {}
    text = f"task {task['ID'][:12]}: {status.get('State', '?')} ({reason(task) or status.get('Message', '')})"
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    return text + (f", exit code {code}" if code is not None else "")


@dataclass(frozen=True)
class Progress:
    """One look at a service: what runs where, what waits, and what Swarm said."""

    service: str
    global_mode: bool
    desired: int
    running: tuple[str, ...]  # the hostname of each running task
    waiting: tuple[tuple[str, str], ...]  # (state, hostname or UNASSIGNED) of each task not running yet
    errors: tuple[tuple[str, str], ...]  # (hostname, reason) Swarm gave on a current or newly failed task
    failures: int  # tasks that failed or were rejected since the wait began
    unplaced: tuple[str, ...] = ()  # the scheduler's error for each task that waits for a node
    update: str = ""  # UpdateStatus.State
    update_message: str = ""

    @property
    def converged(self) -> bool:
        return len(self.running) == self.desired and not (self.global_mode and self.desired == 0)

    def line(self) -> str:
        """``web: 2/3 running (manager1, worker1); starting: worker2``; during an update only tasks of the
        new spec count (the old ones serve meanwhile): ``web: 2/3 updated (...)``."""
        verb = {"updating": "updated", "paused": "updated", "rollback_started": "rolled back",
                "rollback_paused": "rolled back"}.get(self.update, "running")
        text = f"{self.service}: {len(self.running)}/{self.desired} {verb}"
        if self.running:
            text += f" ({hosts_text(self.running)})"
        by_state: dict[str, list[str]] = {}
        for state, host in self.waiting:
            by_state.setdefault(state, []).append(host)
        for state in sorted(by_state, key=lambda s: ORDER.get(s, 0), reverse=True):
            text += f"; {state}: {hosts_text(by_state[state])}"
        return text

    def reasons(self) -> str:
        """Swarm's reasons, each with the nodes that gave it: ``No such image: x (worker1, worker2)``."""
        nodes: dict[str, list[str]] = {}
        for host, text in self.errors:
            nodes.setdefault(text, []).append(host)
        return "; ".join(f"{text} ({hosts_text(hosts)})" if any(hosts) else text for text, hosts in nodes.items())


def hosts_text(hosts: Iterable[str]) -> str:
    """``manager1 x2, worker1``; tasks without a node are counted: ``3 unassigned``."""
    counts = Counter(hosts)
    named = [f"{h} x{n}" if n > 1 else h for h, n in sorted(counts.items()) if h != UNASSIGNED]
    return ", ".join(named + ([f"{counts[UNASSIGNED]} unassigned"] if counts[UNASSIGNED] else []))


def observe(service: dict, tasks: list[dict], nodes: list[dict], seen: frozenset[str] = frozenset()) -> Progress:
    """A Progress from the service's inspect data, its up-to-date tasks and the swarm's nodes.

    ``seen`` holds the IDs of tasks that existed before the change: their failures are old news.
    Tasks on a node that is down do not count (Swarm replaces them), as in the docker CLI.
    """
    hostnames = {n["ID"]: (n.get("Description") or {}).get("Hostname", n["ID"][:12]) for n in nodes}
    down = {n["ID"] for n in nodes if (n.get("Status") or {}).get("State") == "down"}
    mode = service["Spec"].get("Mode") or {}
    global_mode = "Global" in mode
    live = [t for t in tasks if t.get("NodeID", "") not in down or not t.get("NodeID")]
    if global_mode:
        chosen = current_tasks([t for t in live if t.get("NodeID")], lambda t: t["NodeID"])
        meant = [t for t in chosen.values() if meant_to_run(t)]
        desired = len(meant)
    else:
        chosen = current_tasks(live, lambda t: t.get("Slot"))
        meant = [t for t in chosen.values() if meant_to_run(t)]
        desired = int((mode.get("Replicated") or {}).get("Replicas", 0))

    def host(task: dict) -> str:
        return hostnames.get(task["NodeID"], task["NodeID"][:12]) if task.get("NodeID") else UNASSIGNED

    running = tuple(sorted(host(t) for t in meant if t["Status"]["State"] == "running"))
    waiting = tuple(sorted((t["Status"]["State"], host(t)) for t in meant if t["Status"]["State"] != "running"))
    failed_now = [t for t in tasks if t["Status"].get("State") in FAILED and t["ID"] not in seen]
    errors = {(host(t), reason(t)) for t in [*meant, *failed_now] if reason(t)}
    status = service.get("UpdateStatus") or {}
    named = TASK_ID.search(status.get("Message", ""))  # "update paused due to failure ... of task ID"
    errors |= {(host(t), ending(t)) for t in tasks if named and t["ID"] == named.group(1)}
    unplaced = tuple(sorted(reason(t) for t in meant if t["Status"]["State"] == "pending" and reason(t)))
    return Progress(service["Spec"]["Name"], global_mode, desired, running, waiting, tuple(sorted(errors)),
                    len(failed_now), unplaced, status.get("State", ""), status.get("Message", ""))


@dataclass
class Watch:
    """Follows one service from a change (create, scale, update, rollback) to its verdict."""

    name: str
    lab: str | None = None  # for the hints
    rollback: bool = False  # waiting for `service rollback`: rollback_completed is success
    seen: frozenset[str] = frozenset()  # task IDs from before the change
    patience: float = PATIENCE
    done: bool = False
    last: Progress | None = None
    _stuck_since: float | None = field(default=None, repr=False)
    _converged_since: float | None = field(default=None, repr=False)

    def step(self, service: dict, tasks: list[dict], nodes: list[dict], now: float) -> Progress:
        """Look once (at time ``now``); set ``done`` when converged. Raises ConvergenceError with Swarm's reason."""
        progress = self.last = observe(service, tasks, nodes, self.seen)
        self._judge_update(progress)
        if progress.converged:
            self._stuck_since = None
            if self._swarm_monitored(progress):
                self.done = True
                return progress
            self._converged_since = self._converged_since if self._converged_since is not None else now
            self.done = now - self._converged_since >= settle_seconds(service)
            return progress
        self._converged_since = None
        self._judge_tasks(progress, service, now)
        return progress

    def _swarm_monitored(self, progress: Progress) -> bool:
        """Swarm has just finished this rolling change and watched the new tasks itself."""
        return progress.update == ("rollback_completed" if self.rollback else "completed")

    def _judge_update(self, progress: Progress) -> None:
        message = progress.update_message
        if progress.update == "paused":
            raise self._failed(f"Swarm paused the update of service {self.name}: {message}", progress)
        if progress.update == "rollback_paused":
            raise self._failed(f"Swarm paused the rollback of service {self.name}: {message}", progress)
        if progress.update == "rollback_completed" and not self.rollback:
            raise self._failed(f"the update of service {self.name} failed and Swarm rolled it back: {message}",
                               progress)
        if progress.update in ("rollback_started", "updating") or self._swarm_monitored(progress):
            return
        if progress.update and progress.update not in ("completed", "rollback_completed"):
            raise LabError(f"service {self.name}: unknown update state {progress.update!r} ({message})")

    def _judge_tasks(self, progress: Progress, service: dict, now: float) -> None:
        """Failed tasks outside an update, or a task that no node can take (for ``patience``)."""
        if progress.update not in UPDATING and progress.failures >= max(2, progress.desired):
            raise self._failed(f"service {self.name} cannot run its tasks: {progress.failures} failed", progress)
        nothing_to_run = progress.global_mode and progress.desired == 0
        if not (progress.unplaced or nothing_to_run):
            self._stuck_since = None
            return
        self._stuck_since = self._stuck_since if self._stuck_since is not None else now
        if now - self._stuck_since < self.patience:
            return
        if nothing_to_run:
            constraints = ((service["Spec"].get("TaskTemplate") or {}).get("Placement") or {}).get("Constraints")
            raise ConvergenceError(
                f"Swarm runs no task of global service {self.name}: no active node meets its placement"
                + (f" ({', '.join(constraints)})" if constraints else ""),
                hint=f"check the constraints and the nodes' availability: {hints.command('swarm.status', lab=self.lab)}")
        raise self._failed(f"service {self.name} has tasks that no node can take", progress)

    def _failed(self, what: str, progress: Progress) -> ConvergenceError:
        said = progress.reasons()
        return ConvergenceError(
            f"{what}\n  seen: {progress.line()}" + (f"\n  Swarm says: {said}" if said else ""),
            hint=f"{hints.command('service.ps', self.name, lab=self.lab)} shows every task; fix the cause, then "
                 f"{hints.command('service.update', self.name, lab=self.lab)} or "
                 f"{hints.command('service.rm', self.name, lab=self.lab)}")


def settle_seconds(service: dict) -> float:
    monitor = ((service.get("Spec") or {}).get("UpdateConfig") or {}).get("Monitor")
    return monitor / NANO if monitor else SETTLE


def default_timeout(service: dict) -> float:
    """Long enough for a rolling change: each batch of ``Parallelism`` tasks waits ``Delay`` and the monitor."""
    spec = service.get("Spec") or {}
    mode = spec.get("Mode") or {}
    tasks = int((mode.get("Replicated") or {}).get("Replicas", 0)) or 10
    config = spec.get("UpdateConfig") or {}
    parallelism = config.get("Parallelism", 1) or tasks
    delay = (config.get("Delay") or 0) / NANO
    return BASE_TIMEOUT + math.ceil(tasks / parallelism) * (delay + settle_seconds(service))


def up_to_date_tasks(manager: docker.DockerClient, service_id: str) -> list[dict]:
    return manager.api.tasks(filters={"service": service_id, "_up-to-date": "true"})


def task_ids(manager: docker.DockerClient, services: Iterable[str]) -> frozenset[str]:
    """IDs of the tasks the services have now (taken before a change: see ``Watch.seen``)."""
    found = set()
    for name in services:
        found |= {t["ID"] for t in manager.api.tasks(filters={"service": name})}
    return frozenset(found)


def _inspect(manager: docker.DockerClient, name: str) -> dict:
    try:
        return manager.api.inspect_service(name)
    except docker.errors.NotFound as err:
        raise LabError(f"service {name} was removed while swarmdeck waited for it") from err


def watch_for(plan: LabPlan, name: str, **options) -> Watch:
    """A Watch of service ``name`` in the lab of ``plan``, patient as its machines are slow."""
    return Watch(name, plan.name, patience=plan.scaled(PATIENCE), **options)


def wait(manager: docker.DockerClient, watches: list[Watch], reporter: Reporter, *, timeout: float | None = None,
         pace: float = 1.0, interval: float = 0.5, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> list[Progress]:
    """Poll until every watched service converged; report a line whenever one changes.

    Raises:
        ConvergenceError: with Swarm's reason, as soon as Swarm gives one.
        WaitTimeout: after ``timeout`` (default: from the services' update settings, times the
            lab's ``pace``: see LabPlan.scaled), naming every service still waited for and its
            last state.
    """
    if timeout is None:
        timeout = pace * max(default_timeout(_inspect(manager, w.name)) for w in watches)
    shown: dict[str, tuple] = {}
    told: set[tuple[str, str, str]] = set()

    def look() -> list[Progress]:
        nodes = manager.api.nodes()
        for watch in watches:
            if watch.done:
                continue
            service = _inspect(manager, watch.name)
            try:
                watch.step(service, up_to_date_tasks(manager, service["ID"]), nodes, clock())
            finally:
                if watch.last is not None:
                    _report(reporter, watch.last, shown, told, clock())
        waiting = [w for w in watches if not w.done]
        if waiting:
            raise NotYet("; ".join(w.last.line() if w.last else f"{w.name}: no answer yet" for w in waiting))
        return [w.last for w in watches if w.last is not None]

    names = ", ".join(w.name for w in watches)
    ps = hints.command("service.ps", watches[0].name, lab=watches[0].lab)
    try:
        return wait_until(look, timeout=timeout, interval=interval, clock=clock, sleep=sleep,
                          describe=f"service{'s' if len(watches) > 1 else ''} {names} to converge "
                                   "(every task running)",
                          hint=f"{ps} shows each task's state and error; a longer --timeout waits longer")
    except KeyboardInterrupt:
        reporter.info(f"stopped waiting: Swarm goes on in the background ({ps} shows the tasks)")
        raise


def _report(reporter: Reporter, progress: Progress, shown: dict, told: set, now: float) -> None:
    """Each new reason Swarm gives, once; a line when a task starts running or the update's state
    changes, and when only tasks' own states (preparing, starting) changed, at most every ``QUIET`` s."""
    for host, text in progress.errors:
        if (progress.service, host, text) not in told:
            told.add((progress.service, host, text))
            reporter.warn(f"{progress.service}: {host + ': ' if host else ''}{text}")
    if progress.update == "rollback_started" and (progress.service, "", "rollback") not in told:
        told.add((progress.service, "", "rollback"))
        reporter.info(f"{progress.service}: Swarm rolls back: {progress.update_message}")
    line, key = progress.line(), (progress.running, progress.desired, progress.update)
    last_line, last_key, at = shown.get(progress.service, ("", None, -QUIET))
    if line != last_line and (key != last_key or now - at >= QUIET):
        shown[progress.service] = (line, key, now)
        reporter.info(line)
