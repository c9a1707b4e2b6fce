"""Lab use cases behind the tasks: up, down, status, env, ssh, node power, swarm init."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from dataclasses import dataclass

import docker.errors
import requests

from orchestrator import access, chaos, services, swarm
from orchestrator import bootstrap as swarm_bootstrap
from orchestrator.clients import ClientPool
from orchestrator.session import LabSession, open_lab
from orchestrator.views import (
    LabStatus,
    lab_status,
    not_ready,
    reachable_manager,
    startable,
)
from orchestrator.viz import control as viz_control
from provision import doctor, hints, inventory, machines, state
from provision.errors import LabError, LabUnhealthy
from provision.images import demo as demo_images
from provision.images import node as images
from provision.lab_services import entry_point as entrypoint
from provision.lab_services import registry
from provision.ledger import Ledger, roll_back
from provision.paths import lab_dir
from provision.plan import RUNNING, LabPlan
from provision.progress import Reporter
from provision.providers import get_provider
from provision.remote import docker_contexts, engine_clients, tls
from provision.spec import load as spec_load
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


def up(spec: LabSpec, reporter: Reporter, options: UpOptions = UpOptions()) -> LabStatus:
    """Create, set up and form the lab of ``spec``; safe to re-run.

    The lab's lock is held for the whole run: a second ``lab.up`` (or down, add, remove)
    of the same lab waits for it, then finds the lab this one made. A failure (or Ctrl-C)
    removes what this run created, in reverse order (provision.ledger), unless
    ``options.keep``: never a lab, machine or disk that existed before it started. The
    state folder goes only when this run made it.
    """
    validation.validate(spec)  # every problem visible without a backend, before any work
    with state.lab_change(spec.name, "lab.up", reporter, wait=options.wait):
        provider = get_provider(spec.provider, lab=spec.name)
        provider.check()
        spec = inventory.spec_for_up(spec, provider)
        ledger = Ledger()
        if state.is_empty(spec.name):
            ledger.record(f"state folder {lab_dir(spec.name)}", lambda: state.remove(spec.name))
        try:
            return _up(spec, provider, reporter, options, ledger)
        except BaseException as failure:
            if isinstance(failure, KeyboardInterrupt):
                stop_helper_threads()  # the node threads still waiting must not outlive the rollback
            if not options.keep:
                roll_back(ledger, reporter, announce=f"lab.up failed: removing what it created for lab {spec.name} "
                                                     "(use --keep to keep it)",
                          resume=hints.command("lab.up", lab=spec.name), remove=hints.command("lab.down", lab=spec.name))
            raise


def dry_run(spec: LabSpec, reporter: Reporter) -> dict:
    """What ``lab.up --dry-run`` shows: the spec as lab.up would build it, with its warnings
    (memory included, as if every node were new); no backend is asked, nothing is created."""
    for warning in validation.validate(spec):
        reporter.warn(warning)
    memory = doctor.memory_warning(len(spec.nodes), get_provider(spec.provider).capabilities.node_memory_mb)
    if memory:
        reporter.warn(memory)
    return spec_load.to_mapping(spec)


def _up(spec: LabSpec, provider, reporter: Reporter, options: UpOptions, ledger: Ledger) -> LabStatus:
    plan, hosts = machines.provision(spec, provider, reporter, ledger, image_method=options.image_method,
                                mirror=options.mirror)
    try:
        with ClientPool(plan) as clients:
            machines.wait_for_engines(plan, clients, [n.name for n in plan.nodes],
                                 timeout=provider.capabilities.boot_timeout)
            plan = pace_to_machines(plan, clients, reporter)
            if plan.registry:
                with reporter.step("lab registry"):
                    registry.ensure_registry(clients[plan.first_manager], hosts[plan.first_manager.name],
                                             plan.registry, spec.registry.image, reporter, timeout=plan.scaled(30))
            swarm_bootstrap.bootstrap(plan, clients, reporter)
            finish(plan, clients, provider, reporter, demo_images=options.demo_images, ledger=ledger)
            if not entrypoint.has_routing_mesh(plan):
                reporter.info(entrypoint.no_mesh_line(plan))
            return lab_status(plan, provider.list(plan.name), clients)
    finally:
        machines.close_hosts(hosts)


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


def finish(plan: LabPlan, clients: ClientPool, provider, reporter: Reporter, *, demo_images: bool = True,
           ledger: Ledger | None = None) -> list[str]:
    """The steps a formed lab can work without: its entry point and the demo images.

    A failure of one of them is not a reason to remove the lab (only failures of its
    machines, their setup or the swarm are): it is reported with the command that
    finishes the job, and the lab stays up. Returns the steps that failed.
    """
    steps = [("entry point", lambda: ensure_entry_point(plan, provider, reporter, ledger),
              hints.command("lab.up", lab=plan.name))]
    if plan.registry and demo_images:
        steps.append(("demo images", lambda: push_demo_images(plan, clients, reporter),
                      hints.command("image.demo", lab=plan.name)))
    failed = []
    for title, run, finish_with in steps:
        try:
            run()
        except (LabError, docker.errors.DockerException, requests.RequestException) as err:
            reporter.warn(f"lab {plan.name} is formed, but its {title} step failed: {err}")
            reporter.warn(f"the lab is up and kept; finish the {title} step with {finish_with}")
            failed.append(title)
    return failed


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


def _same_image(local, manager, address: str, tag: str) -> bool:
    try:
        remote = manager.images.get(registry.lab_reference(address, tag))
    except docker.errors.ImageNotFound:  # not on the manager: push again
        return False
    return remote.id == local.images.get(tag).id


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
    if status.provider == "ssh":  # existing hosts: the machine is up, `lab.start` starts its engine
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


ENV_VARIABLES = ("DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "SWARMDECK_LAB", "SWARMDECK_NODE")
SHELLS = ("bash", "zsh", "sh", "fish", "powershell")


def env(name: str, node: str, shell: str | None = None) -> str:
    """Shell lines that point the docker CLI at ``node``'s engine (docker-machine's `env`)."""
    _, plan = inventory.existing_lab(name)
    address = plan.node(node).address
    certs = tls.client_certs(name)
    values = dict(zip(ENV_VARIABLES, ("1", f"tcp://{address}:{tls.ENGINE_PORT}", str(certs.folder), name, node)))
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


def demo_images_for(name: str, reporter: Reporter) -> list[str]:
    """Build the demo images; push them to lab ``name``'s registry when it has one. Returns
    their references (in the lab registry once pushed).

    Whether the lab is up is judged from its machines and its registry now, never from a
    record that a failed run may not have written.

    Raises:
        LabError: the lab exists but the node running its registry is down.
    """
    local = engine_clients.host_client(name)
    if not lab_exists(name):
        reporter.info(f"there is no lab {name} on this machine: the images stay on this machine's engine")
        return demo_images.ensure_demo_images(local, images.ensure_node_image(local, reporter), reporter)
    provider, plan = inventory.existing_lab(name)
    if not plan.registry:
        reporter.info(f"lab {name} runs no registry: the images stay on this machine's engine")
        return demo_images.ensure_demo_images(local, images.ensure_node_image(local, reporter), reporter)
    first = plan.first_manager.name
    machine = next((m for m in provider.list(name) if m.name == first), None)
    if machine is None or machine.state != RUNNING:
        raise LabError(f"lab {name} is not up: {first}, which runs its registry, is "
                       f"{machine.state if machine else 'missing'}",
                       hint=f"start it: {hints.command('lab.start', first, lab=name)}, or {hints.command('lab.up', lab=name)}")
    with ClientPool(plan) as clients:
        push_demo_images(plan, clients, reporter)
    return [registry.lab_reference(plan.registry, tag) for tag in demo_images.demo_tags()]


def lab_exists(name: str) -> bool:
    """Whether lab ``name`` exists on this machine (its provider finds its spec)."""
    provider = get_provider(inventory.provider_of(name), lab=name)
    return inventory.current_spec(provider, name) is not None
