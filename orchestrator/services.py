"""Services through the docker SDK: create, list, tasks, scale, update, rollback, remove.

Images of the lab registry may be named without it: ``swarmdeck/web:1`` becomes
``REGISTRY/swarmdeck/web:1`` when the lab registry holds that repository.

The ``*_service`` functions are what the tasks run: like the docker CLI without
``--detach``, they wait until Swarm converged (orchestrator.converge), and a new
service's image is checked before anything is created.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import docker
import docker.errors
import requests
from docker.types import (
    ConfigReference,
    EndpointSpec,
    Healthcheck,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    UpdateConfig,
)

from orchestrator import converge
from orchestrator.session import LabSession
from provision import hints
from provision.errors import LabError
from provision.lab_services import entry_point as entrypoint
from provision.lab_services import registry
from provision.plan import LabPlan
from provision.progress import Reporter

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
    healthcheck: bool = True  # False: none runs, not even the image's (a demo about the wire on a slow VM)
    networks: tuple[str, ...] = ()  # overlay networks the tasks join (names)
    secrets: tuple[SecretReference, ...] = ()  # files under /run/secrets in every task
    configs: tuple[ConfigReference, ...] = ()  # files at their target path in every task

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


def lab_image(plan: LabPlan, image: str, held: dict[str, list[str]] | None = None) -> str:
    """``image`` in the lab registry when the registry holds its repository, else unchanged.

    ``held`` is the registry's catalog when the caller has it already.
    """
    if not plan.registry or image.startswith(plan.registry + "/"):
        return image
    if held is None:
        try:
            held = registry.catalog(plan.registry)
        except LabError:
            return image
    repository, _ = split_reference(image)
    return registry.lab_reference(plan.registry, image) if repository in held else image


def split_reference(image: str) -> tuple[str, str | None]:
    """``repo[:tag][@digest]`` -> (repository, tag): ``latest`` when none is given, None for a digest."""
    name, at, _ = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    repository, tag = (name.rsplit(":", 1) if ":" in last else (name, "latest"))
    return repository, None if at else tag


def checked_image(lab: LabSession, image: str, reporter: Reporter) -> str:
    """The reference a new service (or an update) runs, refused before anything changes when
    no node could get it.

    An image of the lab registry (``REGISTRY/...``, or a repository the registry holds) must
    have that tag there. Any other image must be on a node already or resolvable by a manager
    (the distribution lookup that `docker service create` makes to pin a digest).
    """
    plan = lab.plan
    held, silent = _catalog(plan)
    reference = lab_image(plan, image, held if held is not None else {})
    if plan.registry and reference.startswith(plan.registry + "/"):
        if held is None:
            raise silent  # type: ignore[misc]  # the registry is where this image has to come from
        return _in_lab_registry(plan, reference, held)
    return _on_a_node_or_resolvable(lab, reference, reporter, silent)


def _catalog(plan: LabPlan) -> tuple[dict[str, list[str]] | None, LabError | None]:
    """The lab registry's catalog (empty without a registry), or None and why it did not answer."""
    if not plan.registry:
        return {}, None
    try:
        return registry.catalog(plan.registry), None
    except LabError as err:
        return None, err


def _push_hint(plan: LabPlan, image: str) -> str:
    return (f"push it from this machine's engine into the lab registry first: "
            f"{hints.command('registry.push', image, lab=plan.name)} (the nodes reach no other registry here)")


def _in_lab_registry(plan: LabPlan, reference: str, held: dict[str, list[str]]) -> str:
    assert plan.registry
    repository, tag = split_reference(reference.removeprefix(plan.registry + "/"))
    if repository not in held:
        raise LabError(f"the lab registry {plan.registry} has no image {repository} "
                       f"(it holds: {', '.join(sorted(held)) or 'nothing'})",
                       hint=_push_hint(plan, f"{repository}:{tag or 'TAG'}"))
    tags = held[repository]
    if tag is not None and tag not in tags:
        raise LabError(f"the lab registry {plan.registry} has no tag {tag!r} of {repository} "
                       f"(its tags: {', '.join(tags) or 'none'})", hint=_push_hint(plan, f"{repository}:{tag}"))
    return reference


def _on_a_node_or_resolvable(lab: LabSession, reference: str, reporter: Reporter,
                             silent_registry: LabError | None) -> str:
    """Accept an image that some node has, or that a manager resolves; else refuse, saying what was tried."""
    have = []
    for node in lab.plan.nodes:
        try:
            lab.clients[node].images.get(reference)
            have.append(node.name)
        except docker.errors.ImageNotFound:
            pass
        except (docker.errors.DockerException, requests.RequestException):
            pass  # a node that is down cannot run the task either
    if len(have) == len(lab.plan.nodes):
        return reference
    try:
        lab.manager.api.inspect_distribution(reference)
        return reference
    except (docker.errors.APIError, requests.RequestException) as err:
        said = _explanation(err)
    if have:
        reporter.warn(f"image {reference} is only on {', '.join(have)} and no registry has it: Swarm rejects "
                      "its tasks on the other nodes (no such image); " + _push_hint(lab.plan, reference))
        return reference
    tried = f"it is on no node of lab {lab.plan.name}, and the manager could not resolve it in a registry ({said})"
    if silent_registry is not None:
        tried += f"; the lab registry did not answer either ({silent_registry})"
    raise LabError(f"cannot create a service of image {reference}: {tried}", hint=_push_hint(lab.plan, reference))


def _explanation(err: Exception) -> str:
    text = getattr(err, "explanation", None) or str(err)
    return " ".join(str(text).split())[:300]


def ingress_warning(plan: LabPlan, request: "ServiceRequest") -> str | None:
    """The no-routing-mesh warning when ``request`` publishes ingress ports in a lab without IPVS."""
    ingress = [p for p in request.publish if p.mode == "ingress"]
    if not ingress or entrypoint.has_routing_mesh(plan):
        return None
    ports = ", ".join(str(p.published) for p in ingress)
    example = ingress[0]
    return entrypoint.without_mesh(
        plan, f"service {request.name}'s ingress port{'s' if len(ingress) > 1 else ''} {ports}",
        f"`--publish {example.published}:{example.target}:host`", "`--endpoint-mode dnsrr`")


def find(manager: docker.DockerClient, name: str):
    try:
        return manager.services.get(name)
    except docker.errors.NotFound as err:
        known = ", ".join(sorted(s.name for s in manager.services.list())) or "none"
        raise LabError(f"there is no service {name!r} (services: {known})") from err


def refuse_bad_request(manager: docker.DockerClient, request: ServiceRequest, lab: str | None = None) -> None:
    """Every problem of ``request``, and a name that is taken, before anything is created."""
    problems = request.problems()
    if problems:
        raise LabError("cannot create service " + request.name + ": " + "; ".join(problems))
    if any(s.name == request.name for s in manager.services.list()):
        raise LabError(f"service {request.name!r} exists already",
                       hint=f"{hints.command('service.rm', request.name, lab=lab)} first")


def create(manager: docker.DockerClient, plan: LabPlan, request: ServiceRequest, *, image: str | None = None):
    """Create the service (returns at once); ``image`` is its checked reference (see checked_image)."""
    refuse_bad_request(manager, request)
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
    for option in ("networks", "secrets", "configs"):
        if getattr(request, option):
            kwargs[option] = list(getattr(request, option))
    if request.restart_delay is not None:
        kwargs["restart_policy"] = RestartPolicy(condition="any", delay=int(request.restart_delay * NANO))
    healthcheck = service_healthcheck(request, plan.pace)
    if healthcheck is not None:
        kwargs["healthcheck"] = healthcheck
    try:
        return manager.services.create(image or lab_image(plan, request.image), **kwargs)
    except docker.errors.APIError as err:
        raise LabError(f"creating service {request.name} failed: {err.explanation or err}") from err


def service_healthcheck(request: ServiceRequest, pace: float) -> Healthcheck | None:
    """The healthcheck the service's tasks run, or None for the image's own unchanged.

    Fields left unset are taken from the image's HEALTHCHECK by the engine. On a slow lab
    (pace above 1: emulated VMs) the check's timeout and start period stretch with the pace:
    swarmdeck/web's 2 s timeout, met in milliseconds on containers, was missed by a VM under
    load, and its healthy tasks were restarted over and over."""
    if not request.healthcheck:
        return Healthcheck(test=["NONE"])
    slow = {} if pace <= 1 else {"timeout": int(2 * pace * NANO), "start_period": int(2 * pace * NANO)}
    if request.health_cmd:
        return Healthcheck(**{"test": ["CMD-SHELL", request.health_cmd], "retries": 2, "timeout": 2 * NANO,
                              "interval": int((request.health_interval or 2) * NANO), **slow})
    if request.health_interval is not None:  # the image's check, run more often
        return Healthcheck(interval=int(request.health_interval * NANO), **slow)
    return Healthcheck(**slow) if slow else None


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


def swap_secret(manager: docker.DockerClient, name: str, old: str, new: SecretReference) -> None:
    """`docker service update --secret-rm OLD --secret-add NEW`: the rest of the service's
    spec is kept; Swarm replaces the tasks (a rolling update), and the new ones see ``new``.

    Raises:
        LabError: the service has no secret ``old``, or Swarm refused the update.
    """
    service = find(manager, name)
    spec = copy.deepcopy(service.attrs["Spec"])
    container = spec["TaskTemplate"]["ContainerSpec"]
    given = container.get("Secrets") or []
    kept = [secret for secret in given if secret.get("SecretName") != old]
    if len(kept) == len(given):
        raise LabError(f"service {name} has no secret {old!r} "
                       f"(its secrets: {', '.join(s.get('SecretName', '?') for s in given) or 'none'})")
    container["Secrets"] = kept + [dict(new)]
    try:
        _post_update(manager, service, spec)
    except docker.errors.APIError as err:
        raise LabError(f"updating the secrets of service {name} failed: {err.explanation or err}") from err


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


# -- what the tasks run: change, then wait like the docker CLI ------------------------------------


@dataclass(frozen=True)
class WaitOptions:
    detach: bool = False  # return at once, as `docker service create --detach`
    timeout: float | None = None  # seconds; None: from the service's update settings (converge.default_timeout)


def outcome(progress: converge.Progress) -> str:
    """``3/3 tasks running (manager1, worker1, worker2)``."""
    where = f" ({converge.hosts_text(progress.running)})" if progress.running else ""
    return f"{len(progress.running)}/{progress.desired} tasks running{where}"


def _detached(lab: LabSession, name: str) -> str:
    return f"not waiting (--detach): {hints.command('service.ps', name, lab=lab.plan.name)} shows its tasks"


def _wait(lab: LabSession, watch: converge.Watch, reporter: Reporter, options: WaitOptions) -> str:
    return outcome(converge.wait(lab.manager, [watch], reporter, timeout=options.timeout, pace=lab.plan.pace)[0])


def create_service(lab: LabSession, request: ServiceRequest, reporter: Reporter,
                   options: WaitOptions = WaitOptions()) -> str:
    """`docker service create`: refuse an image no node could get, create, wait until its tasks run.

    Returns the outcome ("3/3 tasks running (...)", or that it did not wait).
    """
    refuse_bad_request(lab.manager, request, lab.plan.name)
    image = checked_image(lab, request.image, reporter)
    warning = ingress_warning(lab.plan, request)
    if warning:
        reporter.warn(warning)
    create(lab.manager, lab.plan, request, image=image)
    if options.detach:
        return _detached(lab, request.name)
    return _wait(lab, converge.watch_for(lab.plan, request.name), reporter, options)


def scale_service(lab: LabSession, name: str, replicas: int, reporter: Reporter,
                  options: WaitOptions = WaitOptions()) -> tuple[bool, str]:
    """`docker service scale NAME=N`: returns whether it changed and the outcome."""
    seen = converge.task_ids(lab.manager, [find(lab.manager, name).id])
    changed = scale(lab.manager, name, replicas)
    if options.detach:
        return changed, _detached(lab, name)
    return changed, _wait(lab, converge.watch_for(lab.plan, name, seen=seen), reporter, options)


def update_service(lab: LabSession, name: str, reporter: Reporter, options: WaitOptions = WaitOptions(),
                   **changes) -> str:
    """`docker service update`: a new image is checked first; waits until Swarm completed the update."""
    service = find(lab.manager, name)
    if changes.get("image"):
        changes["image"] = checked_image(lab, changes["image"], reporter)
    seen = converge.task_ids(lab.manager, [service.id])
    update(lab.manager, lab.plan, name, **changes)
    if options.detach:
        return _detached(lab, name)
    return _wait(lab, converge.watch_for(lab.plan, name, seen=seen), reporter, options)


def rollback_service(lab: LabSession, name: str, reporter: Reporter, options: WaitOptions = WaitOptions()) -> str:
    """`docker service rollback`: waits until Swarm completed the rollback."""
    seen = converge.task_ids(lab.manager, [find(lab.manager, name).id])
    rollback(lab.manager, name)
    if options.detach:
        return _detached(lab, name)
    return _wait(lab, converge.watch_for(lab.plan, name, rollback=True, seen=seen), reporter, options)
