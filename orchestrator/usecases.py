"""Lab use cases behind the tasks: up, down, status, env, ssh, node power, swarm init."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

from orchestrator import (
    access,
    chaos,
    listing,
    membership,
    nodes,
    services,
    stacks,
    swarm,
)
from orchestrator import bootstrap as swarm_bootstrap
from orchestrator.clients import ClientPool
from orchestrator.create import push_demo_images, push_stand_ins
from orchestrator.demos import catalog
from orchestrator.demos import plot as demo_plot
from orchestrator.demos.report import DemoReport
from orchestrator.demos.runner import run_all, run_demo
from orchestrator.lessons import model as lesson_model
from orchestrator.lessons import runner as lesson_runner
from orchestrator.session import LabSession, open_lab
from orchestrator.tables import RegistryEntry, service_table
from orchestrator.views import (
    LabStatus,
    lab_status,
    not_ready,
    reachable_manager,
    startable,
)
from orchestrator.viz import control as viz_control
from provision import doctor, hints, inventory, state
from provision.errors import LabError, LabUnhealthy, ProviderUnavailable, UsageError
from provision.images import box as box_images
from provision.images import demo as demo_images
from provision.images import node as images
from provision.images import prune as image_prune
from provision.images import tutorial
from provision.images import vm as vm_images
from provision.lab_services import registry
from provision.plan import RUNNING
from provision.progress import Reporter
from provision.providers import get_provider
from provision.remote import docker_contexts, engine_clients
from provision.spec import load as spec_load
from provision.spec import validation
from provision.spec.model import LabSpec


def dry_run(spec: LabSpec, reporter: Reporter) -> dict:
    """What ``lab.up --dry-run`` shows: the spec as lab.up would build it, with its warnings
    (memory included, as if every node were new); no backend is asked, nothing is created."""
    for warning in validation.validate(spec):
        reporter.warn(warning)
    memory = doctor.memory_warning(len(spec.nodes), get_provider(spec.provider).capabilities.node_memory_mb)
    if memory:
        reporter.warn(memory)
    return spec_load.to_mapping(spec)


def down(name: str, reporter: Reporter, provider_name: str | None = None, *, wait: bool = True) -> dict[str, int]:
    """Remove every resource of lab ``name`` (and stop its visualizer, and remove its nodes'
    docker contexts); nothing of other labs is touched. All counts 0: there was no such lab.
    Holds the lab's lock (a running lab.up finishes first); no empty folder is left."""
    with state.lab_change(name, "lab.down", reporter, wait=wait):
        viz_control.down(name)
        counts = inventory.destroy(name, provider_name)
        removed = docker_contexts.remove_lab(name)
        if removed:
            counts["docker contexts"] = len(removed)
        return counts


def status(name: str) -> LabStatus:
    provider, plan = inventory.existing_lab(name)
    with ClientPool(plan, timeout=5) as clients:
        return lab_status(plan, provider.list(name), clients)


def require_healthy(status: LabStatus) -> None:
    """Raise LabUnhealthy, saying what would help, unless a manager answers and every node is ready.

    ``lab.status`` calls it after printing, so scripts can tell from its exit code.
    """
    if status.healthy:
        return
    problems = [] if status.swarm else ["no manager answers"]
    if not_ready(status.nodes):
        problems.append(f"not ready: {', '.join(not_ready(status.nodes))}")
    stopped = startable(status.nodes)
    if get_provider(status.provider).capabilities.power == "engine":  # the machine is up: lab.start starts its engine
        stopped = [n.name for n in status.nodes if not n.ready]
    if stopped:
        starts = ", ".join(hints.command("lab.start", node, lab=status.name) for node in stopped)
        hint = f"start {'it' if len(stopped) == 1 else 'them'}: {starts}"
    elif not status.swarm:
        hint = (f"every manager's machine runs but none answers as a swarm manager: "
                f"{hints.command('lab.up', lab=status.name)} sets the lab up again")
    else:
        hint = (f"a node whose machine runs may still be joining (Swarm marks it ready within seconds); "
                f"else look at its engine: {hints.command('lab.ssh', 'NODE', lab=status.name)}")
    raise LabUnhealthy(f"lab {status.name} is {status.state}: {'; '.join(problems)}", hint=hint)


def swarm_status(name: str) -> tuple[LabStatus, dict[str, int]]:
    """The lab's status and the number of running tasks per node."""
    provider, plan = inventory.existing_lab(name)
    with ClientPool(plan, timeout=5) as clients:
        machines = provider.list(name)
        result = lab_status(plan, machines, clients)
        manager = reachable_manager(plan, clients, machines) if result.swarm else None
        return result, services.running_per_node(manager) if manager else {}


ENV_VARIABLES = access.ENV_VARIABLES
SHELLS = ("bash", "zsh", "sh", "fish", "powershell")


def env(name: str, node: str, shell: str | None = None) -> str:
    """Shell lines that point the docker CLI at ``node``'s engine (docker-machine's `env`)."""
    _, plan = inventory.existing_lab(name)
    values = access.engine_env(plan, node)
    shell = choose_shell(shell)
    lines = [_set(shell, key, value) for key, value in values.items()] + [_unset(shell, "DOCKER_CONTEXT")]
    flags = ("--lab", name) + (("--shell", shell) if shell != _detected_shell() else ())
    return "\n".join(lines + _usage(shell, "lab.env", node, *flags)) + "\n"


def env_unset(shell: str | None = None) -> str:
    """The lines that undo ``env`` (docker-machine's `env -u`): docker talks to the local engine again."""
    shell = choose_shell(shell)
    flags = ("--shell", shell) if shell != _detected_shell() else ()
    return "\n".join([_unset(shell, key) for key in ENV_VARIABLES] + _usage(shell, "lab.env", "-u", *flags)) + "\n"


def choose_shell(shell: str | None) -> str:
    """``shell``, else this user's login shell (fish, or a POSIX shell)."""
    if shell is None:
        return _detected_shell()
    if shell not in SHELLS:
        raise LabError(f"unknown shell {shell!r}: choose one of {', '.join(SHELLS)}")
    return shell


def _detected_shell() -> str:
    return "fish" if os.path.basename(os.environ.get("SHELL", "")) == "fish" else "bash"


def _set(shell: str, key: str, value: str) -> str:
    if shell == "fish":
        return f'set -gx {key} "{value}";'
    if shell == "powershell":
        return f'$Env:{key} = "{value}"'
    return f'export {key}="{value}"'


def _unset(shell: str, key: str) -> str:
    if shell == "fish":
        return f"set -e {key};"
    if shell == "powershell":
        return f"Remove-Item Env:\\{key} -ErrorAction SilentlyContinue"
    return f"unset {key}"


def _usage(shell: str, task: str, *args: str) -> list[str]:
    words = " ".join([hints.program(), task, *args])
    run = {"fish": f"eval ({words})", "powershell": f"& {words} | Invoke-Expression"}.get(shell, f'eval "$({words})"')
    return ["# Run this command to configure your shell:", f"# {run}"]


def ssh_command(name: str, node: str, command: str | None = None) -> list[str]:
    """The ssh command line that logs into ``node`` with the lab's key and known_hosts."""
    _, plan = inventory.existing_lab(name)
    address = access.find_node(plan, node).address
    access.require_program("ssh")
    return access.ssh_argv(name, address, command)


def ssh(name: str, node: str, command: str | None = None) -> int:
    argv = ssh_command(name, node, command)
    if command is None:
        os.execvp(argv[0], argv)
    return subprocess.run(argv, check=False).returncode


def power(name: str, node: str, action: str, reporter: Reporter) -> None:
    """start | stop | kill | pause a node (see orchestrator.chaos)."""
    provider, plan = inventory.existing_lab(name)
    provider.machine(name, node)  # a clear error for an unknown node
    with ClientPool(plan) as clients:
        getattr(chaos, action)(LabSession(provider, plan, clients, None), node)  # type: ignore[arg-type]
    reporter.result(f"{action} {node}", True)


def swarm_init(name: str, reporter: Reporter) -> LabStatus:
    """Form the swarm of an existing lab (no change when it is formed)."""
    provider, plan = inventory.existing_lab(name)
    with ClientPool(plan) as clients:
        swarm_bootstrap.bootstrap(plan, clients, reporter)
        return lab_status(plan, provider.list(name), clients)


def join_tokens(name: str, rotate: bool = False) -> swarm.JoinTokens:
    """The swarm's join tokens (only for `swarm.tokens`, which the user asked for)."""
    with open_lab(name) as lab:
        if rotate:
            swarm.rotate_tokens(lab.manager)
        return swarm.tokens(lab.manager)


def push_image(name: str, image: str) -> str:
    """Side-load ``image`` from this machine's engine into lab ``name``'s registry."""
    _, plan = inventory.existing_lab(name)
    if not plan.registry:
        raise LabError(f"lab {name!r} runs no registry", hint="recreate it without --no-registry")
    with ClientPool(plan) as clients:
        manager = clients[plan.first_manager]
        registry.check_running(manager, plan.first_manager.name, name)
        return registry.push(engine_clients.host_client(name), manager, plan.registry, image)


def registry_catalog(name: str) -> dict[str, list[str]]:
    """``{repository: [tags]}`` of lab ``name``'s registry, once manager1's engine says that
    the registry container runs (else the error says so, and how to bring it back)."""
    _, plan = inventory.existing_lab(name)
    if not plan.registry:
        raise LabError(f"lab {name!r} runs no registry")
    with ClientPool(plan, timeout=10) as clients:
        registry.check_running(clients[plan.first_manager], plan.first_manager.name, name)
    return registry.catalog(plan.registry)


def registry_listing(name: str) -> list[RegistryEntry]:
    """registry.ls: each repository of lab ``name``'s registry with its tags, and for each tag
    that holds a stand-in (provision/images/tutorial.py), what it really is (its label)."""
    found = registry_catalog(name)
    _, plan = inventory.existing_lab(name)
    return [RegistryEntry(repository, tags, {tag: label for tag in tags
                                              if (label := registry.image_labels(plan.registry, repository, tag)
                                                  .get(tutorial.STAND_IN_LABEL))})
            for repository, tags in sorted(found.items())]


def demo_images_for(name: str, reporter: Reporter) -> list[str]:
    """Build the demo images; push them to lab ``name``'s registry when it has one. Returns
    their references (in the lab registry once pushed).

    Raises:
        LabError: the lab exists but the node running its registry is down.
    """
    local = engine_clients.host_client(name)
    plan = _lab_to_push_to(name, reporter)
    if plan is None:
        return demo_images.ensure_demo_images(local, images.ensure_node_image(local, reporter), reporter)
    with ClientPool(plan) as clients:
        push_demo_images(plan, clients, reporter)
    return [registry.lab_reference(plan.registry, tag) for tag in demo_images.demo_tags()]


def tutorial_images_for(name: str, reporter: Reporter, *, only: tuple[str, ...] = (), mirror: str | None = None,
                        rebuild: bool = False) -> list[str]:
    """image.tutorial: build the stand-ins of the tutorials' Docker Hub images (``only`` these
    and what they are built from; default all); push them to lab ``name``'s registry under
    the Hub's names when it has one. Returns their references (this machine's tags when
    nothing was pushed).

    Raises:
        LabError: an unknown stand-in; the lab exists but the node running its registry is down.
    """
    for stand_in in only:
        tutorial.by_name(stand_in)  # an unknown name is refused before anything is built
    local = engine_clients.host_client(name)
    built = tutorial.ensure_stand_ins(local, reporter, names=only, mirror=mirror, rebuild=rebuild)
    for image, note in tutorial.NO_STAND_IN.items():
        reporter.info(f"no stand-in for {image}: {note}")
    plan = _lab_to_push_to(name, reporter)
    if plan is None:
        return [item.tag for item in built]
    with ClientPool(plan) as clients:
        return push_stand_ins(plan, clients, built, reporter)


def _lab_to_push_to(name: str, reporter: Reporter):
    """The plan of lab ``name`` when images built here can go to its registry; None (said)
    when there is no such lab or it runs no registry.

    Whether the lab is up is judged from its machines and its registry now, never from a
    record that a failed run may not have written.

    Raises:
        LabError: the lab exists but the node running its registry is down.
    """
    if not lab_exists(name):
        reporter.info(f"there is no lab {name} on this machine: the images stay on this machine's engine")
        return None
    provider, plan = inventory.existing_lab(name)
    if not plan.registry:
        reporter.info(f"lab {name} runs no registry: the images stay on this machine's engine")
        return None
    first = plan.first_manager.name
    machine = next((m for m in provider.list(name) if m.name == first), None)
    if machine is None or machine.state != RUNNING:
        raise LabError(f"lab {name} is not up: {first}, which runs its registry, is "
                       f"{machine.state if machine else 'missing'}",
                       hint=f"start it: {hints.command('lab.start', first, lab=name)}, or {hints.command('lab.up', lab=name)}")
    return plan


def lab_exists(name: str) -> bool:
    """Whether lab ``name`` exists on this machine (its provider finds its spec)."""
    provider = get_provider(inventory.provider_of(name), lab=name)
    return inventory.current_spec(provider, name) is not None


# -- node operations, services, stacks: each opens the lab and acts through a manager --------------


def change_node(name: str, operation: Callable[..., bool], *args) -> bool:
    """One of orchestrator.nodes' operations (promote, demote, availability, labels, leave,
    join) on lab ``name``; whether it changed anything."""
    with open_lab(name) as session:
        return operation(session, *args)


def create_service(name: str, request: services.ServiceRequest, reporter: Reporter,
                   options: services.WaitOptions) -> str:
    with open_lab(name) as session:
        return services.create_service(session, request, reporter, options)


def service_listing(name: str) -> str:
    """The table of the lab's services (mode, running/desired, image, ports)."""
    with open_lab(name) as session:
        return service_table(session.manager)


def service_tasks(name: str, service: str) -> list[services.TaskView]:
    with open_lab(name) as session:
        return services.tasks(session.manager, service)


def scale_service(name: str, service: str, replicas: int, reporter: Reporter,
                  options: services.WaitOptions) -> tuple[bool, str]:
    with open_lab(name) as session:
        return services.scale_service(session, service, replicas, reporter, options)


def update_service(name: str, service: str, reporter: Reporter, options: services.WaitOptions, **changes) -> str:
    with open_lab(name) as session:
        return services.update_service(session, service, reporter, options, **changes)


def rollback_service(name: str, service: str, reporter: Reporter, options: services.WaitOptions) -> str:
    with open_lab(name) as session:
        return services.rollback_service(session, service, reporter, options)


def remove_service(name: str, service: str) -> None:
    with open_lab(name) as session:
        services.remove(session.manager, service)


def deploy_stack(name: str, stack: str, source: str, reporter: Reporter, options: services.WaitOptions) -> str:
    with open_lab(name) as session:
        return stacks.deploy(session, stack, source, reporter, options)


def remove_stack(name: str, stack: str, reporter: Reporter) -> str:
    with open_lab(name) as session:
        return stacks.remove(session, stack, reporter)


def meshless_stack(name: str, stack: str, source: str, reporter: Reporter) -> str:
    """The compose file to give the real `docker stack deploy` on this lab (rewritten where there is
    no routing mesh, its ports routed by the load balancer): its path."""
    with open_lab(name) as session:
        return str(stacks.prepare(session, stack, source, reporter).path)


# -- lessons -----------------------------------------------------------------------------------


def lessons() -> list:
    """Every lesson, loaded and validated (a broken lesson file fails here, naming what is wrong)."""
    return lesson_model.load_all()


def run_lesson(name: str, lesson: str, reporter: Reporter, first: int = 1, last: int | None = None) -> str:
    loaded = lesson_model.load(lesson)
    with open_lab(name) as session:
        return lesson_runner.run(session, loaded, reporter, first, last)


# -- demos -------------------------------------------------------------------------------------------


def demo(name: str, demo_name: str, reporter: Reporter, **options) -> DemoReport:
    """Run one demo of the catalog on lab ``name``; its report (verdict, figures, saved files)."""
    return run_demo(demo_name, name, reporter, catalog.WORKSHOP[demo_name], **options)


def workshop(name: str, only: list[str] | None, reporter: Reporter) -> list[DemoReport]:
    """The catalog's demos in workshop order (or those in ``only``), one report each."""
    return run_all(name, reporter, catalog.chosen(only))


def redraw_reports(name: str, report: str | None, size: str | None) -> list[Path]:
    """demo.plot: draw saved reports' PNGs again (orchestrator/demos/plot.py)."""
    return demo_plot.redraw(name, report, demo_plot.parse_size(size) if size else demo_plot.SIZE)


# -- delegated to the modules that hold them (one use case per task, all here) --------------------


def list_labs() -> tuple[list[dict], list[str]]:
    """lab.ls: every lab on this machine (orchestrator/listing.py)."""
    return listing.list_labs()


def node_ip(name: str, node: str) -> str:
    return access.node_ip(name, node)


def inspect_node(name: str, node: str) -> dict:
    return access.inspect_node(name, node)


def copy_files(name: str, source: str, destination: str, *, recursive: bool = False) -> int:
    return access.scp(name, source, destination, recursive=recursive)


def node_context(name: str, node: str) -> tuple[str, str]:
    return access.context(name, node)


def add_node(name: str, node: str, role: str, labels: dict[str, str], reporter: Reporter, *,
             wait: bool = True) -> LabStatus:
    return membership.add_node(name, node, role, labels, reporter, wait=wait)


def remove_node(name: str, node: str, reporter: Reporter, *, wait: bool = True) -> LabStatus:
    return membership.remove_node(name, node, reporter, wait=wait)


def visualizer_up(name: str, port: int | None, host: str) -> tuple[viz_control.Viz, bool]:
    return viz_control.up(name, port, host)


def visualizer_down(name: str) -> bool:
    return viz_control.down(name)


def promote(name: str, node: str) -> bool:
    return change_node(name, nodes.promote, node)


def demote(name: str, node: str) -> bool:
    return change_node(name, nodes.demote, node)


def set_availability(name: str, node: str, availability: str) -> bool:
    return change_node(name, nodes.set_availability, node, availability)


def set_labels(name: str, node: str, add: dict[str, str], remove: list[str]) -> bool:
    return change_node(name, nodes.set_labels, node, add, remove)


def leave_swarm(name: str, node: str) -> bool:
    return change_node(name, nodes.leave, node)


def join_swarm(name: str, node: str, role: str) -> bool:
    return change_node(name, nodes.join, node, role)


# -- this machine: checks and images ----------------------------------------------------------------

IMAGE_FORMATS = ("docker", "qcow2", "box")


def machine_checks() -> list[doctor.Finding]:
    """lab.doctor: what this machine offers labs, each finding with a fix-it line."""
    return doctor.run_checks()


def build_image(image_format: str, reporter: Reporter, *, method: str = "auto", mirror: str | None = None,
                rebuild: bool = False) -> str:
    """image.build: the node image (docker), the VM image (qcow2) or the Vagrant box; what was
    built, as a line to print (its tag or path).

    Raises:
        UsageError: for another format.
    """
    if image_format == "qcow2":
        return str(vm_images.ensure_vm_image(reporter, mirror=mirror, rebuild=rebuild).folder)
    if image_format == "box":
        box = box_images.ensure_box(reporter, mirror=mirror, rebuild=rebuild)
        return f"{box.path}\n  add it: vagrant box add --name {box.name} {box.path}  (lab.up --provider vagrant does)"
    if image_format == "docker":
        return images.ensure_node_image(engine_clients.host_client(), reporter, method=method, mirror=mirror,
                                        rebuild=rebuild)
    raise UsageError(f"unknown image format {image_format!r}: use {', '.join(IMAGE_FORMATS)}")


def prune_images(*, dry_run: bool = False) -> list[str]:
    """image.prune: VM images, pool volumes, Vagrant boxes, and the host engine's node and
    stand-in images, of older recipes (the engine's are skipped when no engine answers)."""
    try:
        client = engine_clients.host_client()
    except ProviderUnavailable:
        client = None
    try:
        return image_prune.prune(client, dry_run=dry_run)
    finally:
        if client is not None:
            client.close()
