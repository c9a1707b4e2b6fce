"""``lab.up`` as one list of named actions, in order (as kind's ``create.go``): machines, host
setup, engines, registry, swarm, entry point, demo images. One runner runs them, each
reported as it goes. When a required action fails (or Ctrl-C), what this run created is
removed, last made first (provision.ledger), unless --keep: never a lab, machine or disk
that existed before the run. An optional action (entry point, demo images) that fails
leaves the formed lab up, with the command that finishes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import docker.errors
import requests

from orchestrator import bootstrap as swarm_bootstrap
from orchestrator.clients import ClientPool
from orchestrator.views import LabStatus, lab_status
from provision import hints, inventory, machines, state
from provision.errors import LabError
from provision.images import demo as demo_images
from provision.images import node as images
from provision.images import tutorial
from provision.lab_services import entry_point as entrypoint
from provision.lab_services import registry
from provision.ledger import Ledger, roll_back
from provision.paths import lab_dir
from provision.plan import LabPlan
from provision.progress import Reporter
from provision.providers import get_provider
from provision.providers.base import Provider
from provision.remote import engine_clients, node_files
from provision.remote.host import Host
from provision.setup import run_setup
from provision.spec import validation
from provision.spec.model import LabSpec
from provision.wait import retried, stop_helper_threads


@dataclass(frozen=True)
class UpOptions:
    keep: bool = False  # keep what was created when up fails (default: roll back what this run made)
    image_method: str = "auto"
    mirror: str | None = None
    demo_images: bool = True
    wait: bool = True  # wait for another run holding the lab's lock (else refuse: exit 75)
    # The DOCKER_* settings of the engine to make a new lab on (class.up places each lab on a host:
    # orchestrator/classroom/placement.py); None: the engine the environment names. A lab that
    # exists keeps the engine it was made on.
    engine: dict[str, str] | None = None


@dataclass
class Run:
    """What one ``lab.up`` carries from action to action."""

    spec: LabSpec
    provider: Provider
    reporter: Reporter
    options: UpOptions
    ledger: Ledger
    plan: LabPlan | None = None
    hosts: dict[str, Host] = field(default_factory=dict)
    clients: ClientPool | None = None


@dataclass(frozen=True)
class Action:
    title: str
    run: Callable[[Run], None]
    finish_with: str | None = None  # optional: the task that finishes it when it failed (the lab stays up)


def make_machines(run: Run) -> None:
    """The machines, on the lab network (chosen under the subnet lock), their host keys known."""
    spec, provider, reporter = run.spec, run.provider, run.reporter
    with reporter.step(f"machines for lab {spec.name} ({provider.name})"):
        provider.prepare(reporter, image_method=run.options.image_method, mirror=run.options.mirror)
        inventory.record_provider(spec)  # before the network: a run killed after it is found again
        plan = machines.lab_network(spec, provider, reporter, run.ledger)
        for warning in validation.warnings(spec):
            reporter.warn(warning)
        machines.warn_about_memory(plan, provider, reporter)
        machines.known_hosts(plan, provider)
        made = provider.create(plan, lambda node: node_files.files(plan, node), reporter, run.ledger)
        run.plan, run.hosts = plan, machines.open_hosts(plan, provider, made)


def set_up_hosts(run: Run) -> None:
    """The same setup steps on every host, over SSH (provision/setup/)."""
    with run.reporter.step("host setup over SSH"):
        run_setup(run.plan, run.hosts, run.reporter)


def reach_engines(run: Run) -> None:
    """Every node's engine answers over TLS; timeouts follow the machines' pace."""
    run.clients = ClientPool(run.plan)
    machines.wait_for_engines(run.plan, run.clients, [n.name for n in run.plan.nodes],
                              timeout=run.provider.capabilities.boot_timeout)
    run.plan = pace_to_machines(run.plan, run.clients, run.reporter)


def start_registry(run: Run) -> None:
    """The lab registry on the first manager, where the lab has one; beside it the Docker Hub
    cache, where the spec asks for one (a warning, not a failure, when it cannot start)."""
    plan = run.plan
    if plan.registry:
        with run.reporter.step("lab registry"):
            registry.ensure_registry(run.clients[plan.first_manager], run.hosts[plan.first_manager.name],
                                     plan.registry, run.spec.registry.image, run.reporter, timeout=plan.scaled(30))
            if plan.registry_cache:
                registry.ensure_cache(run.clients[plan.first_manager], run.hosts[plan.first_manager.name],
                                      plan.registry_cache, run.spec.registry.cache_remote, run.reporter,
                                      timeout=plan.scaled(20))


def form_swarm(run: Run) -> None:
    """Init or repair, managers one at a time, workers in parallel, labels (orchestrator/bootstrap.py)."""
    swarm_bootstrap.bootstrap(run.plan, run.clients, run.reporter)


def open_entry_point(run: Run) -> None:
    """The routing mesh, or the lab's load balancer where the nodes' kernel has no IPVS."""
    ensure_entry_point(run.plan, run.provider, run.reporter, run.ledger)
    if not entrypoint.has_routing_mesh(run.plan):
        run.reporter.info(entrypoint.no_mesh_line(run.plan))


def push_demo_images_to_registry(run: Run) -> None:
    if run.plan.registry and run.options.demo_images:
        push_demo_images(run.plan, run.clients, run.reporter)


ACTIONS = (
    Action("machines", make_machines),
    Action("host setup", set_up_hosts),
    Action("engines", reach_engines),
    Action("registry", start_registry),
    Action("swarm", form_swarm),
    Action("entry point", open_entry_point, finish_with="lab.up"),
    Action("demo images", push_demo_images_to_registry, finish_with="image.demo"),
)


def run_actions(actions: tuple[Action, ...], run: Run) -> list[str]:
    """Run ``actions`` in order; a required one's failure propagates (the caller rolls back),
    an optional one's is reported with the command that finishes it. Returns the optional
    actions that failed."""
    failed = []
    for action in actions:
        if action.finish_with is None:
            action.run(run)
            continue
        try:
            action.run(run)
        except (LabError, docker.errors.DockerException, requests.RequestException) as err:
            finish_with = hints.command(action.finish_with, lab=run.spec.name)
            run.reporter.warn(f"lab {run.spec.name} is formed, but its {action.title} step failed: {err}")
            run.reporter.warn(f"the lab is up and kept; finish the {action.title} step with {finish_with}")
            failed.append(action.title)
    return failed


def up(spec: LabSpec, reporter: Reporter, options: UpOptions = UpOptions()) -> LabStatus:
    """Create, set up and form the lab of ``spec`` (ACTIONS); safe to re-run.

    The lab's lock is held for the whole run: a second ``lab.up`` (or down, add, remove)
    of the same lab waits for it, then finds the lab this one made. A failure (or Ctrl-C)
    removes what this run created, in reverse order (provision.ledger), unless
    ``options.keep``: never a lab, machine or disk that existed before it started. The
    state folder goes only when this run made it.
    """
    validation.validate(spec)  # every problem visible without a backend, before any work
    with state.lab_change(spec.name, "lab.up", reporter, wait=options.wait):
        new_state = state.is_empty(spec.name)
        if options.engine is not None and state.read_engine(spec.name) is None:
            state.write_engine(spec.name, dict(options.engine))  # before the provider opens its client
        provider = get_provider(spec.provider, lab=spec.name)
        provider.check()
        spec = inventory.spec_for_up(spec, provider)
        run = Run(spec, provider, reporter, options, Ledger())
        if new_state:
            run.ledger.record(f"state folder {lab_dir(spec.name)}", lambda: state.remove(spec.name))
        try:
            run_actions(ACTIONS, run)
            return lab_status(run.plan, provider.list(run.plan.name), run.clients)
        except BaseException as failure:
            if isinstance(failure, KeyboardInterrupt):
                stop_helper_threads()  # the node threads still waiting must not outlive the rollback
            if not options.keep:
                roll_back(run.ledger, reporter, announce=f"lab.up failed: removing what it created for lab {spec.name} "
                                                         "(use --keep to keep it)",
                          resume=hints.command("lab.up", lab=spec.name), remove=hints.command("lab.down", lab=spec.name))
            raise
        finally:
            machines.close_hosts(run.hosts)
            if run.clients is not None:
                run.clients.close()


def pace_to_machines(plan: LabPlan, clients: ClientPool, reporter: Reporter) -> LabPlan:
    """Measure how fast the first manager's engine answers; when that is slower than the
    provider expects (existing hosts may be VMs under emulation too), stretch the lab's
    timeouts to it, now and for later commands (recorded in the lab's state)."""
    measured = engine_clients.measure_pace(clients[plan.first_manager])
    if measured <= plan.pace:
        return plan
    reporter.info(f"the engine of {plan.first_manager.name} answers about {measured:.0f}x slower than a container "
                  f"node's: timeouts and waits of lab {plan.name} are stretched to match")
    state.write_pace(plan.name, measured)
    paced = dataclasses.replace(plan, pace=measured)
    clients.rescale(paced)
    return paced


def ensure_entry_point(plan: LabPlan, provider, reporter: Reporter, ledger: Ledger | None = None
                       ) -> entrypoint.EntryPoint:
    """Without a routing mesh, run the lab's load balancer in front of the nodes."""
    entry = entrypoint.entry_point(plan)
    changed = entry.kind == "load balancer" and provider.ensure_load_balancer(plan, ledger)
    reporter.result(f"entry point: {entry.kind} at {entry.address} (ports {', '.join(map(str, entrypoint.PORTS))})",
                    changed)
    return entry


def push_demo_images(plan: LabPlan, clients: ClientPool, reporter: Reporter) -> list[str]:
    """Build the demo images on this machine if needed and make sure the lab registry has them.

    Loading an image into a node's engine and pushing it is the slowest engine call of a
    lab.up (seconds under emulation): each is tried twice before the step fails.
    """
    assert plan.registry
    registry.check_running(clients[plan.first_manager], plan.first_manager.name, plan.name)
    local = engine_clients.host_client(plan.name)
    # the demo images take busybox from the container node image (built here when a VM lab needs it)
    tags = demo_images.ensure_demo_images(local, images.ensure_node_image(local, reporter), reporter)
    have = registry.catalog(plan.registry, timeout=plan.scaled(5))
    manager = clients[plan.first_manager]
    pushed = []
    with reporter.step("demo images in the lab registry"):
        for tag in tags:
            repository, _, version = tag.partition(":")
            if version in have.get(repository, []) and _same_image(local, manager, plan.registry, tag):
                reporter.result(registry.lab_reference(plan.registry, tag), False)
                continue
            pushed.append(retried(lambda: registry.push(local, manager, plan.registry, tag),
                                  describe=f"pushing {tag} through the engine of {plan.first_manager.name}",
                                  timeout=clients.timeout,
                                  hint=f"is {plan.first_manager.name} overloaded? {hints.command('lab.status', lab=plan.name)}"))
            reporter.result(pushed[-1], True)
    return pushed


PUSH_TIMEOUT = 300  # seconds for one engine call of a push: loading hundreds of MB into a node


def push_stand_ins(plan: LabPlan, clients: ClientPool, built: list[tutorial.Built], reporter: Reporter) -> list[str]:
    """Make sure the lab registry holds each stand-in under its Docker Hub names, pushing the
    ones it lacks or holds in another version (the registry's image configuration digest is
    the local image's ID when they are the same image). Returns every reference."""
    assert plan.registry
    registry.check_running(clients[plan.first_manager], plan.first_manager.name, plan.name)
    missing: dict[str, list[str]] = {}
    for item in built:
        for name in item.stand_in.hub:
            repository, _, tag = name.rpartition(":")
            if registry.config_digest(plan.registry, repository, tag, timeout=plan.scaled(5)) == item.image_id:
                reporter.result(f"{plan.registry}/{name}", changed=False)
            else:
                missing.setdefault(item.tag, []).append(name)
    if not missing:
        reporter.info(f"skipped pushing: the lab registry holds the {len(built)} stand-ins already, the same "
                      f"images under their {sum(len(item.stand_in.hub) for item in built)} Docker Hub names")
    else:
        local = engine_clients.host_client(plan.name)
        manager = engine_clients.node_client(plan.name, plan.first_manager.address,
                                             timeout=int(plan.scaled(PUSH_TIMEOUT)))
        try:
            with reporter.step(f"stand-ins into the lab registry under Docker Hub's names "
                               f"({sum(map(len, missing.values()))} to push)"):
                registry.push_many(local, manager, plan.registry, missing, reporter)
        finally:
            manager.close()
    return [f"{plan.registry}/{name}" for item in built for name in item.stand_in.hub]


def _same_image(local, manager, address: str, tag: str) -> bool:
    try:
        remote = manager.images.get(registry.lab_reference(address, tag))
    except docker.errors.ImageNotFound:  # not on the manager: push again
        return False
    return remote.id == local.images.get(tag).id
