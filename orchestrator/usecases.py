"""Lab use cases behind the tasks: up, down, status, env, ssh, node power, swarm init."""

from __future__ import annotations

import os
import subprocess

from orchestrator import access, chaos, services, swarm
from orchestrator import bootstrap as swarm_bootstrap
from orchestrator.clients import ClientPool
from orchestrator.create import push_demo_images
from orchestrator.session import LabSession, open_lab
from orchestrator.views import (
    LabStatus,
    lab_status,
    not_ready,
    reachable_manager,
    startable,
)
from orchestrator.viz import control as viz_control
from provision import doctor, hints, inventory, state
from provision.errors import LabError, LabUnhealthy
from provision.images import demo as demo_images
from provision.images import node as images
from provision.lab_services import registry
from provision.plan import RUNNING
from provision.progress import Reporter
from provision.providers import get_provider
from provision.remote import docker_contexts, engine_clients, tls
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
