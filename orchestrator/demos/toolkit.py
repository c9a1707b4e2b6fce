"""What every demo shares: its web service, a watcher of running tasks, and waits."""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import docker.errors
import requests

from orchestrator import nodes, services
from orchestrator.demos.probe import Probe
from orchestrator.demos.report import DemoReport
from orchestrator.session import LabSession
from orchestrator.views import live_entries, swarm_nodes
from provision.errors import LabError
from provision.lab_services import entry_point as entrypoint
from provision.wait import NotYet, wait_until

PORT = entrypoint.PORTS[0]
STARTING = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting")  # meant to run, not yet running


def prepull(lab: LabSession, image: str) -> None:
    """Pull ``image`` on every running node, so rescheduled tasks start even when the
    registry's node (manager1) is the one a demo kills."""
    reference = services.lab_image(lab.plan, image)
    for node in lab.plan.nodes:
        try:
            lab.clients[node].images.pull(reference)
        except (docker.errors.DockerException, requests.RequestException):
            continue  # a node that is down pulls when it returns


def demo_service(lab: LabSession, report: DemoReport, name: str, replicas: int, image: str = "swarmdeck/web:1",
                 *, published: bool = True, **options) -> services.ServiceRequest:
    """Create the demo's web service, published so that the lab's entry point reaches it.

    With the routing mesh it publishes through ingress; behind the lab's load balancer
    (no IPVS) it publishes in host mode, so at most one task runs per node and the
    replicas are capped to leave a node free for rescheduling.
    """
    entry = entrypoint.entry_point(lab.plan)
    active = len([n for n in swarm_nodes(lab.manager) if n.availability == "active"])
    host_mode = published and entry.publish_mode == "host"
    if host_mode and replicas > active - 1:
        report.notes.append(f"no routing mesh: host-mode ports allow one task per node, so {active - 1} replicas "
                            f"(not {replicas}) leave one node free to take a task over")
        replicas = max(1, active - 1)
    try:
        services.remove(lab.manager, name)
    except LabError:
        pass
    ports = (services.Publish(PORT, 80, entry.publish_mode),) if published else ()
    if "constraints" in options:
        options["constraints"] = tuple(options["constraints"])
    request = services.ServiceRequest(
        name, image, replicas, ports, env=("NODE_NAME={{.Node.Hostname}}",),
        max_per_node=1 if host_mode else None, restart_delay=lab.plan.spec.demos.restart_delay,
        health_interval=lab.plan.spec.demos.health_interval, labels={"io.swarmdeck.demo": report.demo},
        **options,
    )
    prepull(lab, image)
    services.create(lab.manager, lab.plan, request)
    where = f"port {PORT} ({entry.publish_mode} mode)" if published else "no published port"
    report.event(f"service {name}: {replicas} replicas of {image}, {where}")
    return request


def version_of(image: str) -> str:
    """The tag of an image reference ("10.0.0.10:5000/swarmdeck/web:2@sha256:..." -> "2")."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[1] if ":" in name else "latest"


def running(lab: LabSession, service: str) -> list[services.TaskView]:
    """Tasks that run and should: a dead node's tasks keep their last state, "running",
    but Swarm has already set their desired state to shutdown."""
    return _running(services.tasks(lab.manager, service))


def _running(tasks: list[services.TaskView]) -> list[services.TaskView]:
    return [t for t in tasks if t.state == "running" and t.desired == "running"]


def wait_running(lab: LabSession, service: str, count: int, *, timeout: float = 120, avoid: str | None = None,
                 version: str | None = None) -> list[services.TaskView]:
    """Wait until ``count`` tasks run (none on ``avoid``; all on ``version`` if given), for
    ``timeout`` seconds on container nodes, longer on slower machines (LabPlan.scaled)."""

    def ready():
        every = services.tasks(lab.manager, service)
        tasks = _running(every)
        good = [t for t in tasks if t.node != avoid and (version is None or t.image.endswith(":" + version))]
        if len(good) != count or len(tasks) != count:
            raise NotYet(f"{len(good)} of {count} wanted tasks run: "
                         + ", ".join(f"{t.node}:{t.image[-1]}" for t in tasks) + _not_running(every))
        return tasks

    return wait_until(ready, timeout=lab.plan.scaled(timeout), interval=0.25,
                      describe=f"{count} running tasks of {service}")


def _not_running(tasks: list[services.TaskView]) -> str:
    """The tasks meant to run that do not (yet), with their state and Swarm's error, for a
    timeout's "last seen" (a task stuck pending says why: no node fits, port in use, ...)."""
    waiting = [t for t in tasks if t.desired in ("running", "ready") and t.state != "running"]
    if not waiting:
        return ""
    return "; not running yet: " + ", ".join(
        f"{t.node} {t.state}" + (" (held back: desired ready)" if t.desired == "ready" else "")
        + (f" ({t.error})" if t.error else "") for t in waiting)


def node_state(lab: LabSession, node: str) -> str:
    live = live_entries(swarm_nodes(lab.manager)).get(node)
    return live.state if live else "absent"


def wait_for_state(lab: LabSession, report: DemoReport, node: str, state: str, text: str) -> float:
    """Wait until the swarm reports ``node`` in ``state``; record ``text``; return its time."""
    wait_until(lambda: node_state(lab, node) == state, timeout=120, interval=0.25,
               describe=f"the swarm to see {node} {state}")
    return report.event(text)


def choose_victim(lab: LabSession, tasks: list[services.TaskView], wanted: str | None) -> str:
    """The worker a demo hurts: ``wanted``, else the first worker that runs a task."""
    workers = [n.name for n in lab.plan.nodes if not n.is_manager]
    if wanted:
        if wanted not in workers:
            raise LabError(f"{wanted} is not a worker of lab {lab.plan.name} (workers: {', '.join(workers)})")
        return wanted
    with_tasks = [w for w in workers if any(t.node == w for t in tasks)]
    if not with_tasks:
        raise LabError("no worker runs a task of the demo service", hint="the demo needs a worker that is up")
    return with_tasks[0]


class Watcher:
    """Samples the running tasks of a service into the report, in a thread: how many, how many
    of each image version, and how many of each are starting but not yet running (healthy): the
    rolling update's plot shows one series per version, and a broken version's tasks that
    never become healthy."""

    def __init__(self, lab: LabSession, report: DemoReport, service: str, interval: float = 0.5):
        self.lab, self.report, self.service, self.interval = lab, report, service, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)

    def sample(self) -> None:
        """Record the running count now (also called by demos at the moments that matter,
        so that a short-lived state is in the report even when a sample is slow)."""
        try:
            tasks = [t for t in services.tasks(self.lab.manager, self.service) if t.desired == "running"]
        except (docker.errors.DockerException, requests.RequestException, LabError):
            return  # no leader for a moment, or the manager in use was just killed
        t = self.report.now()
        up = [task for task in tasks if task.state == "running"]
        starting = [task for task in tasks if task.state in STARTING]
        self.report.replicas.append((t, len(up)))
        self.report.versions.append((t, dict(Counter(version_of(task.image) for task in up)),
                                     dict(Counter(version_of(task.image) for task in starting))))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    @contextmanager
    def running(self) -> Iterator["Watcher"]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=10)


@contextmanager
def probing(lab: LabSession, report: DemoReport) -> Iterator[Probe]:
    """Probe the entry point for the duration of the block; samples go into the report."""
    probe = Probe(entrypoint.entry_point(lab.plan).url(PORT), report.started).start()
    report.probe = probe
    try:
        yield probe
    finally:
        report.samples = probe.stop()
        report.probe = None


@dataclass(frozen=True)
class TaskContainer:
    """A running task's container, reached through its node's engine."""

    node: str
    task_id: str
    container: object  # docker.models.containers.Container
    addresses: dict  # {network name: the task's address on it, without the prefix length}

    def run(self, *command: str) -> tuple[int, str]:
        """Run ``command`` in the container: (exit code, output). The output may hold a
        secret (demo.secrets reads its files this way): compare it, never print it."""
        code, output = self.container.exec_run(list(command))
        return code, output.decode(errors="replace")


def task_containers(lab: LabSession, service: str) -> list[TaskContainer]:
    """The containers of ``service``'s running tasks, each on its node."""
    hostnames = {n.id: n.hostname for n in swarm_nodes(lab.manager)}
    found = []
    for task in lab.manager.api.tasks(filters={"service": service, "desired-state": "running"}):
        status = task.get("Status") or {}
        container_id = (status.get("ContainerStatus") or {}).get("ContainerID")
        if status.get("State") != "running" or not container_id:
            continue
        node = hostnames.get(task.get("NodeID", ""), "")
        addresses = {attachment["Network"]["Spec"]["Name"]: attachment["Addresses"][0].split("/")[0]
                     for attachment in task.get("NetworksAttachments") or [] if attachment.get("Addresses")}
        found.append(TaskContainer(node, task["ID"], lab.clients[node].containers.get(container_id), addresses))
    return sorted(found, key=lambda t: (t.node, t.task_id))


def task_container(lab: LabSession, service: str, network: str | None = None,
                   timeout: float = 60) -> TaskContainer:
    """The container of ``service``'s one running task (with its address on ``network``), once
    there is one: a task that Swarm has just reported running may be replaced a moment later."""
    def found() -> TaskContainer:
        containers = [t for t in task_containers(lab, service) if network is None or network in t.addresses]
        if not containers:
            raise NotYet(f"no running task of {service}" + (f" on network {network}" if network else ""))
        return containers[0]

    return wait_until(found, timeout=lab.plan.scaled(timeout), interval=0.5, describe=f"a running task of {service}")


def leader_other_than(lab: LabSession, managers: list[str], old: str) -> str:
    """The leader that one of ``managers`` reports, once it is not ``old``; the manager in use
    becomes the one that answered."""
    for name in managers:
        try:
            leaders = [n.hostname for n in swarm_nodes(lab.clients[name]) if n.leader]
        except (docker.errors.DockerException, requests.RequestException):
            continue
        if leaders and leaders[0] != old:
            lab.manager = lab.clients[name]
            return leaders[0]
    raise NotYet("no manager reports a new leader yet")


def accepted_write(lab: LabSession, service: str, replicas: int) -> bool:
    """Scale ``service`` to ``replicas``: a Raft write, accepted only while there is a leader."""
    started = time.monotonic()
    try:
        services.scale(lab.manager, service, replicas)
        return True
    except (docker.errors.APIError, requests.RequestException) as err:
        raise NotYet(f"write refused after {time.monotonic() - started:.1f}s: {err}") from err


def remove_network(manager: docker.DockerClient, name: str, timeout: float = 60) -> None:
    """Remove overlay network ``name`` if it exists, once the tasks of removed services have
    left it (seconds after their removal)."""
    def removed() -> bool:
        try:
            manager.networks.get(name).remove()
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as err:
            raise NotYet(f"{name}: {err.explanation or err}") from err
        return True

    wait_until(removed, timeout=timeout, interval=0.5, describe=f"the demo network {name} to be removable")


def settle(seconds: float) -> None:
    time.sleep(seconds)


def ensure_task_on(lab: LabSession, report: DemoReport, service: str, node: str,
                   tasks: list[services.TaskView]) -> list[services.TaskView]:
    """Make ``node`` run a task of ``service``: with one task per node (host mode) it may be
    the free node. Draining a node that runs one moves that task to the free node."""
    if any(t.node == node for t in tasks):
        return tasks
    donor = next(t.node for t in tasks if t.node != node)
    report.event(f"{node} runs no task yet: drain {donor} for a moment so that its task moves to {node}")
    nodes.set_availability(lab, donor, "drain")
    try:
        wait_until(lambda: any(t.node == node for t in running(lab, service)), timeout=90, interval=0.25,
                   describe=f"a task of {service} on {node}")
    finally:
        nodes.set_availability(lab, donor, "active")
    return wait_running(lab, service, len(tasks))


def service_and_victim(lab: LabSession, report: DemoReport, service: str, replicas: int,
                       node: str | None) -> tuple[services.ServiceRequest, str]:
    """The demo service running, and the worker a demo will hurt (running one of its tasks)."""
    if node:
        choose_victim(lab, [], node)  # a wrong node is refused before anything is created
    request = demo_service(lab, report, service, replicas)
    tasks = wait_running(lab, service, request.replicas)
    victim = choose_victim(lab, tasks, node)
    tasks = ensure_task_on(lab, report, service, victim, tasks)
    report.event(f"{request.replicas} tasks run; {sum(t.node == victim for t in tasks)} on {victim}")
    return request, victim
