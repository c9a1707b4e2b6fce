"""Services through the docker SDK: create, list, tasks, scale, update, rollback, remove.

Images of the lab registry may be named without it: ``swarmdeck/web:1`` becomes
``REGISTRY/swarmdeck/web:1`` when the lab registry holds that repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import docker
import docker.errors
from docker.types import EndpointSpec, Healthcheck, RestartPolicy, ServiceMode, UpdateConfig

from provision import cli, registry
from provision.errors import LabError
from provision.machine import LabPlan

NANO = 1_000_000_000
PUBLISH_MODES = ("ingress", "host")
ENDPOINT_MODES = ("vip", "dnsrr")
UPDATE_ORDERS = ("stop-first", "start-first")
FAILURE_ACTIONS = ("pause", "continue", "rollback")


@dataclass(frozen=True)
class Publish:
    published: int
    target: int
    mode: str = "ingress"  # ingress (routing mesh) | host (the node's own port)
    protocol: str = "tcp"

    @classmethod
    def parse(cls, text: str) -> "Publish":
        """``8080:80``, ``8080:80/udp`` or ``8080:80:host``, as `-p` reads them."""
        spec, _, mode = text.partition(":host")
        spec, _, protocol = spec.partition("/")
        try:
            published, target = (int(p) for p in spec.split(":"))
        except ValueError as err:
            raise LabError(f"cannot read the published port {text!r}: use PUBLISHED:TARGET[/udp][:host]") from err
        return cls(published, target, "host" if text.endswith(":host") else "ingress", protocol or "tcp")


@dataclass(frozen=True)
class ServiceRequest:
    name: str
    image: str
    replicas: int | None = 1  # None: global mode
    publish: tuple[Publish, ...] = ()
    constraints: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    endpoint_mode: str = "vip"
    update_parallelism: int = 1
    update_delay: float = 0.0
    update_order: str = "stop-first"
    update_failure_action: str = "pause"
    health_cmd: str | None = None
    labels: dict = field(default_factory=dict)
    max_per_node: int | None = None  # at most this many tasks on one node (host-mode ports need 1)
    restart_delay: float | None = None  # seconds before a failed task is restarted (Swarm's default 5)
    health_interval: float | None = None  # seconds between the image's own healthchecks (None: the image's)

    def problems(self) -> list[str]:
        found = []
        if self.replicas is not None and self.replicas < 0:
            found.append(f"replicas must be 0 or more, not {self.replicas}")
        for value, allowed, what in ((self.endpoint_mode, ENDPOINT_MODES, "endpoint mode"),
                                     (self.update_order, UPDATE_ORDERS, "update order"),
                                     (self.update_failure_action, FAILURE_ACTIONS, "update failure action")):
            if value not in allowed:
                found.append(f"unknown {what} {value!r}: use {', '.join(allowed)}")
        for port in self.publish:
            if port.mode not in PUBLISH_MODES:
                found.append(f"unknown publish mode {port.mode!r}")
            if self.endpoint_mode == "dnsrr" and port.mode == "ingress":
                found.append(f"port {port.published}: endpoint mode dnsrr needs host-mode ports (8080:80:host)")
        return found


def default_name(image: str) -> str:
    """A service name from its image when none is given: ``swarmdeck/web:1`` -> ``web``."""
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    base = last.split(":", 1)[0]
    return re.sub(r"[^a-z0-9-]", "-", base.lower()).strip("-") or "service"


def lab_image(plan: LabPlan, image: str) -> str:
    """``image`` in the lab registry when the registry holds its repository, else unchanged."""
    if not plan.registry or image.startswith(plan.registry + "/"):
        return image
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    try:
        held = registry.catalog(plan.registry)
    except LabError:
        return image
    return registry.lab_reference(plan.registry, image) if repository in held else image


def find(manager: docker.DockerClient, name: str):
    try:
        return manager.services.get(name)
    except docker.errors.NotFound as err:
        known = ", ".join(sorted(s.name for s in manager.services.list())) or "none"
        raise LabError(f"there is no service {name!r} (services: {known})") from err


def create(manager: docker.DockerClient, plan: LabPlan, request: ServiceRequest):
    problems = request.problems()
    if problems:
        raise LabError("cannot create service " + request.name + ": " + "; ".join(problems))
    if any(s.name == request.name for s in manager.services.list()):
        raise LabError(f"service {request.name!r} exists already", hint=f"{cli.command('service.rm', request.name)} first")
    ports = {p.published: (p.target, p.protocol, p.mode) for p in request.publish}
    mode = ServiceMode("global") if request.replicas is None else ServiceMode("replicated", request.replicas)
    kwargs = dict(
        name=request.name, mode=mode, constraints=list(request.constraints), env=list(request.env),
        endpoint_spec=EndpointSpec(mode=request.endpoint_mode, ports=ports or None), labels=request.labels,
        update_config=UpdateConfig(parallelism=request.update_parallelism, delay=int(request.update_delay * NANO),
                                   order=request.update_order, failure_action=request.update_failure_action),
    )
    if request.max_per_node is not None:
        kwargs["maxreplicas"] = request.max_per_node
    if request.restart_delay is not None:
        kwargs["restart_policy"] = RestartPolicy(condition="any", delay=int(request.restart_delay * NANO))
    if request.health_cmd:
        kwargs["healthcheck"] = Healthcheck(test=["CMD-SHELL", request.health_cmd],
                                            interval=int((request.health_interval or 2) * NANO),
                                            timeout=2 * NANO, retries=2)
    elif request.health_interval is not None:  # the image's check, run more often
        kwargs["healthcheck"] = Healthcheck(interval=int(request.health_interval * NANO))
    try:
        return manager.services.create(lab_image(plan, request.image), **kwargs)
    except docker.errors.APIError as err:
        raise LabError(f"creating service {request.name} failed: {err.explanation or err}") from err


def scale(manager: docker.DockerClient, name: str, replicas: int) -> bool:
    service = find(manager, name)
    mode = service.attrs["Spec"]["Mode"]
    if "Replicated" not in mode:
        raise LabError(f"{name} is a global service: it runs one task per node and cannot be scaled",
                       hint="add or drain nodes to change how many tasks it runs")
    if replicas < 0:
        raise LabError(f"replicas must be 0 or more, not {replicas}")
    if mode["Replicated"].get("Replicas") == replicas:
        return False
    spec = dict(service.attrs["Spec"], Mode={"Replicated": {"Replicas": replicas}})
    _post_update(manager, service, spec)
    return True


def _post_update(manager: docker.DockerClient, service, spec: dict, **params) -> None:
    """Send ``spec`` back as the service's whole spec, as the docker CLI does.

    The SDK's ``Service.scale``/``update`` rebuild the task template, which Swarm takes
    as a change and so replaces every task; writing the read spec back changes only
    what was edited (``docker service scale`` starts just the new tasks).
    """
    api = manager.api
    url = api._url("/services/{0}/update", service.id)
    response = api._post_json(url, data=spec, params={"version": service.version, **params})
    api._raise_for_status(response)


def update(manager: docker.DockerClient, plan: LabPlan, name: str, *, image: str | None = None,
           replicas: int | None = None, parallelism: int | None = None, delay: float | None = None,
           order: str | None = None, failure_action: str | None = None, force: bool = False) -> None:
    """Change a service; only the given settings change (the rest of its spec is kept)."""
    service = find(manager, name)
    kwargs: dict = {}
    if image:
        kwargs["image"] = lab_image(plan, image)
    if replicas is not None:
        kwargs["mode"] = ServiceMode("replicated", replicas)
    update_config = _merged_update_config(service, parallelism, delay, order, failure_action)
    if update_config is not None:
        kwargs["update_config"] = update_config
    if force:  # the SDK bumps the task template's counter; passing False would send a bool
        kwargs["force_update"] = True
    try:
        service.update(**kwargs)
    except docker.errors.APIError as err:
        raise LabError(f"updating service {name} failed: {err.explanation or err}") from err


def _merged_update_config(service, parallelism, delay, order, failure_action) -> UpdateConfig | None:
    if all(v is None for v in (parallelism, delay, order, failure_action)):
        return None
    current = service.attrs["Spec"].get("UpdateConfig") or {}
    return UpdateConfig(
        parallelism=parallelism if parallelism is not None else current.get("Parallelism", 1),
        delay=int(delay * NANO) if delay is not None else current.get("Delay", 0),
        order=order or current.get("Order", "stop-first"),
        failure_action=failure_action or current.get("FailureAction", "pause"),
        monitor=current.get("Monitor"),
    )


def rollback(manager: docker.DockerClient, name: str) -> None:
    """`docker service rollback`: go back to the previous spec."""
    service = find(manager, name)
    if not service.attrs.get("PreviousSpec"):
        raise LabError(f"{name} has no previous version to roll back to")
    _post_update(manager, service, service.attrs["Spec"], rollback="previous")


def remove(manager: docker.DockerClient, name: str) -> None:
    find(manager, name).remove()


@dataclass(frozen=True)
class TaskView:
    service: str
    slot: int | None
    node: str
    desired: str
    state: str
    image: str
    error: str
    id: str = ""


def tasks(manager: docker.DockerClient, name: str | None = None) -> list[TaskView]:
    """Tasks of one service (or of all), with node hostnames."""
    hostnames = {n.id: n.attrs.get("Description", {}).get("Hostname", n.id[:12]) for n in manager.nodes.list()}
    services = [find(manager, name)] if name else manager.services.list()
    views = []
    for service in services:
        for task in service.tasks():
            spec = task["Spec"]["ContainerSpec"]
            views.append(TaskView(service.name, task.get("Slot"), hostnames.get(task.get("NodeID", ""), "-"),
                                  task["DesiredState"], task["Status"]["State"], spec["Image"].split("@")[0],
                                  task["Status"].get("Err", ""), task["ID"]))
    return sorted(views, key=lambda t: (t.service, t.slot or 0, t.node))


def running_per_node(manager: docker.DockerClient) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task in tasks(manager):
        if task.state == "running":
            counts[task.node] = counts.get(task.node, 0) + 1
    return counts
