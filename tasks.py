"""swarmdeck: Docker Swarm labs in one command (`invoke --list` shows every task)."""

from __future__ import annotations

import functools
import json
import os
import sys

import docker.errors
import requests
from invoke import Collection, Exit, Program, Task, task
from invoke.config import AmbiguousMergeError
from invoke.parser import Parser
from invoke.parser.parser import ParseMachine

from orchestrator import create, services, stacks
from orchestrator import usecases as labs
from orchestrator.tables import (
    class_table,
    demo_summary,
    lab_list_table,
    registry_lines,
    status_table,
    task_table,
)
from provision import hints
from provision.doctor import render as render_findings
from provision.errors import Interrupted, LabError, redact
from provision.images import tutorial as tutorial_images
from provision.progress import ConsoleReporter
from provision.spec import load as spec_load

ACTIVE_LAB = "SWARMDECK_LAB"  # exported by `lab.env`: the lab this shell works with
LAB_HELP = "the lab (default: lab.yaml's name, else the lab that `lab.env` set in this shell, else 'swarmdeck')"
OLD_NAME_HELP = "deprecated spelling of --lab"
NO_WAIT_HELP = "refuse at once (exit 75) while another run changes this lab, instead of waiting for it"
HELP_FLAGS = ("--help", "-h")


class LabTask(Task):
    """A task whose flags leave -h to --help (Invoke would give it to a flag such as --health-cmd),
    and whose automatic short flags are letters only (Invoke would give ``--no-wait``, whose
    ``n`` and ``o`` are taken, the short flag ``-``, shown as ``--``: the end-of-options marker)."""

    def arg_opts(self, name, default, taken_names):
        return super().arg_opts(name, default, set(taken_names) | {"h", "-"})


def lab_task(*args, **kwargs):
    """@task that turns LabError into a clean exit with a hint: no traceback for expected failures.

    Invoke gives ``TASK --help`` to a task's first positional argument as its value; such a
    call prints the task's help instead of running it.
    """

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(c, *a, **kw):
            if any(isinstance(v, str) and v in HELP_FLAGS for v in (*a, *kw.values())):
                return print_help(wrapper)
            try:
                return fn(c, *a, **kw)
            except Interrupted as err:  # a second Ctrl-C: the message says how to finish, it is no error
                raise Exit(err.user_message(), code=err.exit_code) from None
            except LabError as err:
                raise Exit(f"error: {err.user_message()}", code=err.exit_code) from err
            except (docker.errors.DockerException, requests.RequestException) as err:
                # A safety net: engine failures we did not foresee still get a clean message.
                raise Exit(f"error: a Docker engine call failed: {redact(str(err))}", code=1) from err
            except KeyboardInterrupt:
                raise Exit("interrupted", code=130) from None

        return task(wrapper, klass=LabTask, **kwargs)

    return decorate(args[0]) if args and callable(args[0]) else decorate


def print_help(body) -> None:
    """The help of the task whose body is ``body``, as `swarmdeck --help TASK` prints it."""
    name = next(n for n in ns.task_names if ns[n].body is body)
    program = Program(namespace=ns, name="swarmdeck", binary=hints.program())
    program.collection, program.parser = ns, Parser(contexts=ns.to_contexts())
    try:
        program.print_task_help(name)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()


def _quiet_stdout() -> None:
    """The reader of stdout went away (`... | head`): stop quietly, as `ls | head` does."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)


def _help_despite_missing_positionals(complete_context):
    """Invoke hands `TASK --help` to TASK's first positional argument; with a second one
    missing it then fails before the task can print its help. Let such a call through
    (the task prints its help and runs nothing). Wraps ParseMachine.complete_context."""

    @functools.wraps(complete_context)
    def complete(parser) -> None:
        context = parser.context
        if context is not None and any(a.value in HELP_FLAGS for a in context.positional_args):
            for argument in context.missing_positional_args:
                argument.value = ""
        complete_context(parser)

    return complete


ParseMachine.complete_context = _help_despite_missing_positionals(ParseMachine.complete_context)


def _config(c) -> dict:
    """The ``lab`` section of Invoke's config (invoke.yaml, INVOKE_LAB_* variables), unset keys left out."""
    def plain(value):
        if hasattr(value, "keys"):
            found = {k: plain(value[k]) for k in value.keys()}
            return {k: v for k, v in found.items() if v is not None and v != {}}
        return value

    return plain(c.config.get("lab") or {})


def _spec(c, spec=None, **overrides):
    return spec_load.load_spec(spec, _config(c), overrides, default_name=os.environ.get(ACTIVE_LAB) or None,
                            sources=spec_load.env_sources(os.environ))


def _lab(c, lab=None, name=None) -> str:
    """The lab a task acts on: ``--lab``, else the spec's name (see LAB_HELP).

    ``--name`` was the flag's old spelling: it still works, with a warning.
    """
    if name is not None:
        ConsoleReporter().warn("--name is deprecated for the lab: use --lab (-l)")
        lab = name if lab is None else lab
    if lab is None:
        return _spec(c).name
    if not lab.strip():
        raise Exit("error: --lab needs a lab's name (an empty one would silently mean the default lab)", code=2)
    return lab


def _not_the_lab(task_name: str, name) -> None:
    """Refuse ``--name`` where it would be read as something else than the lab."""
    if name is not None:
        raise Exit(f"error: {task_name} has no --name: the lab is --lab (-l), and the service or stack is "
                   "the task's first argument", code=2)


# -- lab ---------------------------------------------------------------------------------------


@lab_task(help={
    "lab": "the new lab's name (default: lab.yaml's, else 'swarmdeck')", "spec": "a lab.yaml file (default: ./lab.yaml if present)",
    "managers": "number of managers (default 3)", "workers": "number of workers (default 2)",
    "subnet": "the lab network's IPv4 CIDR, or 'auto'",
    "provider": "docker (default: containers), libvirt (VMs), vagrant (VMs by Vagrant), ssh (existing hosts)",
    "no_registry": "run no private registry", "keep": "keep what was created if up fails",
    "image_method": "node image build: auto | debootstrap | dockerfile", "mirror": "Debian mirror URL for debootstrap",
    "profile": "timings: default (Swarm's own) or tuned (0.5 s heartbeat, fast task restarts)",
    "dry_run": "print the lab spec as JSON (every layer applied and checked) and its warnings; create nothing",
    "name": OLD_NAME_HELP, "no_wait": NO_WAIT_HELP,
})
def up(c, lab=None, spec=None, managers=None, workers=None, subnet=None, provider=None, no_registry=False,
       keep=False, image_method="auto", mirror=None, profile=None, dry_run=False, name=None, no_wait=False):
    """Create the lab (3 managers + 2 workers + registry); safe to re-run."""
    if name is not None:
        ConsoleReporter().warn("--name is deprecated for the lab: use --lab (-l)")
    if lab is not None and not lab.strip():
        raise Exit("error: --lab needs a lab's name (an empty one would silently mean the default lab)", code=2)
    overrides = {"name": lab if lab is not None else name, "managers": managers, "workers": workers,
                 "provider": provider, "profile": profile}
    if subnet:
        overrides["network"] = {"subnet": subnet}
    if no_registry:
        overrides["registry"] = {"enabled": False}
    lab_spec = _spec(c, spec, **overrides)
    if dry_run:
        print(json.dumps(labs.dry_run(lab_spec, ConsoleReporter()), indent=2))
        return
    options = create.UpOptions(keep=keep, image_method=image_method, mirror=mirror, wait=not no_wait)
    result = create.up(lab_spec, ConsoleReporter(), options)
    print(status_table(result))


@lab_task(help={"lab": LAB_HELP, "name": OLD_NAME_HELP, "no_wait": NO_WAIT_HELP})
def down(c, lab=None, name=None, no_wait=False):
    """Remove the lab's containers, networks, volumes and state; nothing else."""
    chosen = _lab(c, lab, name)
    counts = labs.down(chosen, ConsoleReporter(), wait=not no_wait)
    if not any(counts.values()):
        print(f"no lab named {chosen} on this machine: nothing to remove")
        return
    print(f"lab {chosen} removed: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


@lab_task(help={"lab": LAB_HELP, "json": "print JSON for scripts", "name": OLD_NAME_HELP})
def status(c, lab=None, json_=False, name=None):
    """Show nodes, roles, leader, addresses and the registry; exit 5 unless every node is ready."""
    result = labs.status(_lab(c, lab, name))
    print(json.dumps(result.to_json(), indent=2) if json_ else status_table(result))
    sys.stdout.flush()  # the table first, then what is wrong (stderr)
    labs.require_healthy(result)


@lab_task(name="ls", help={"json": "print JSON for scripts (a list of objects)"})
def lab_ls(c, json_=False):
    """List every lab on this machine: provider, state, nodes ready, leader, registry, ACTIVE (*)."""
    rows, foreign = labs.list_labs()
    if json_:
        print(json.dumps([row.to_json() for row in rows], indent=2))
    else:
        print(lab_list_table(rows, foreign))


@lab_task(help={"node": "node name, e.g. manager1", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def ip(c, node, lab=None, name=None):
    """Print a node's address (docker-machine ip)."""
    print(labs.node_ip(_lab(c, lab, name), node))


@lab_task(name="inspect", help={"node": "node name, e.g. manager1", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def inspect_node(c, node, lab=None, name=None):
    """A node as JSON: machine, addresses, engine URL and TLS files, SSH command, provider, role."""
    print(json.dumps(labs.inspect_node(_lab(c, lab, name), node), indent=2))


@lab_task(help={"source": "NODE:PATH or a local path", "destination": "NODE:PATH or a local path",
                "lab": LAB_HELP, "recursive": "copy folders", "name": OLD_NAME_HELP})
def scp(c, source, destination, lab=None, recursive=False, name=None):
    """Copy files to, from or between nodes: lab.scp ./app.yml manager1:/root/ (docker-machine scp)."""
    code = labs.copy_files(_lab(c, lab, name), source, destination, recursive=recursive)
    if code:
        raise Exit(code=code)


@lab_task(name="context", help={"node": "node name, e.g. manager1", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def context_(c, node, lab=None, name=None):
    """Create or update the docker context swarmdeck-LAB-NODE for a node's engine."""
    chosen = _lab(c, lab, name)
    context, done = labs.node_context(chosen, node)
    print(f"docker context {context} {done}: {node}'s engine with lab {chosen}'s client certificate\n"
          f"  docker --context {context} node ls     # one command\n"
          f"  docker context use {context}          # every docker command, in every shell "
          "(`docker context use default` goes back)")


@lab_task(help={"node": "node name, e.g. manager1", "lab": LAB_HELP, "command": "run this instead of a shell",
                "name": OLD_NAME_HELP})
def ssh(c, node, lab=None, command=None, name=None):
    """Log into a node with the lab's SSH key (or run --command there)."""
    code = labs.ssh(_lab(c, lab, name), node, command)
    if code:
        raise Exit(code=code)


@lab_task(help={"node": "node name, e.g. manager1; or -u (--unset): the lines that undo it", "lab": LAB_HELP,
                "shell": "bash, zsh, sh, fish or powershell (default: your login shell's kind)",
                "name": OLD_NAME_HELP})
def env(c, node, lab=None, shell=None, name=None):
    """Point `docker` at a node: eval "$(swarmdeck lab.env manager1)"; undo: eval "$(swarmdeck lab.env -u)"."""
    if node in ("-u", "--unset"):
        print(labs.env_unset(shell), end="")
    else:
        print(labs.env(_lab(c, lab, name), node, shell), end="")


@lab_task(name="stop", help={"node": "node name", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def stop_node(c, node, lab=None, name=None):
    """Shut a node down cleanly (its engine stops first)."""
    labs.power(_lab(c, lab, name), node, "stop", ConsoleReporter())


@lab_task(name="start", help={"node": "node name", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def start_node(c, node, lab=None, name=None):
    """Start a stopped (or killed) node again."""
    labs.power(_lab(c, lab, name), node, "start", ConsoleReporter())


@lab_task(name="kill", help={"node": "node name", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def kill_node(c, node, lab=None, name=None):
    """Power a node off hard (SIGKILL), as for a failover demo."""
    labs.power(_lab(c, lab, name), node, "kill", ConsoleReporter())


@lab_task(name="pause", help={"node": "node name", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def pause_node(c, node, lab=None, name=None):
    """Freeze a node (a hung machine: up but silent); `lab.start` resumes it."""
    labs.power(_lab(c, lab, name), node, "pause", ConsoleReporter())


@lab_task(name="add", iterable=["label"], help={
    "node": "the new node's hostname", "role": "worker (default) or manager", "lab": LAB_HELP,
    "label": "a node label key=value for Swarm (repeatable)", "name": OLD_NAME_HELP, "no_wait": NO_WAIT_HELP,
})
def add_node(c, node, role="worker", lab=None, label=None, name=None, no_wait=False):
    """Add a node to a running lab: create, set up, join, put behind the entry point."""
    result = labs.add_node(_lab(c, lab, name), node, role, dict(_key_value(item) for item in label or []),
                                 ConsoleReporter(), wait=not no_wait)
    print(status_table(result))


@lab_task(name="remove", help={"node": "node name", "lab": LAB_HELP, "name": OLD_NAME_HELP,
                               "no_wait": NO_WAIT_HELP})
def remove_node(c, node, lab=None, name=None, no_wait=False):
    """Remove a node from a running lab: drain, leave the swarm, delete the machine."""
    result = labs.remove_node(_lab(c, lab, name), node, ConsoleReporter(), wait=not no_wait)
    print(status_table(result))


@lab_task(name="doctor")
def doctor_(c):
    """Check this machine for what labs need, each with a fix-it line."""
    results = labs.machine_checks()
    print(render_findings(results))
    if any(r.level == "fail" for r in results):
        raise Exit(code=1)


# -- swarm -------------------------------------------------------------------------------------


@lab_task(name="init", help={"lab": LAB_HELP, "name": OLD_NAME_HELP})
def swarm_init(c, lab=None, name=None):
    """Form the swarm on an existing lab (no change if formed)."""
    print(status_table(labs.swarm_init(_lab(c, lab, name), ConsoleReporter())))


@lab_task(name="status", help={"lab": LAB_HELP, "json": "print JSON for scripts", "name": OLD_NAME_HELP})
def swarm_status(c, lab=None, json_=False, name=None):
    """Show the swarm's nodes: role, leader, availability, state, running tasks."""
    result, running = labs.swarm_status(_lab(c, lab, name))
    print(json.dumps({**result.to_json(), "running_tasks": running}, indent=2) if json_
          else status_table(result, running))


@lab_task(help={"lab": LAB_HELP, "rotate": "rotate both tokens first", "name": OLD_NAME_HELP})
def tokens(c, lab=None, rotate=False, name=None):
    """Print the worker and manager join tokens (secrets: handle with care)."""
    found = labs.join_tokens(_lab(c, lab, name), rotate=rotate)
    print(f"worker  {found.worker}\nmanager {found.manager}")


def _node_op(c, lab, name, what, operation, *args):
    ConsoleReporter().result(what, operation(_lab(c, lab, name), *args))


@lab_task(help={"node": "node name", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def promote(c, node, lab=None, name=None):
    """Make a worker a manager."""
    _node_op(c, lab, name, f"promote {node}", labs.promote, node)


@lab_task(help={"node": "node name", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def demote(c, node, lab=None, name=None):
    """Make a manager a worker (never the last one; the leader hands over first)."""
    _node_op(c, lab, name, f"demote {node}", labs.demote, node)


@lab_task(help={"node": "node name", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def drain(c, node, lab=None, name=None):
    """Move a node's tasks away and give it no new ones."""
    _node_op(c, lab, name, f"drain {node}", labs.set_availability, node, "drain")


@lab_task(help={"node": "node name", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def activate(c, node, lab=None, name=None):
    """Let a drained or paused node take tasks again."""
    _node_op(c, lab, name, f"activate {node}", labs.set_availability, node, "active")


@lab_task(help={"node": "node name", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def pause(c, node, lab=None, name=None):
    """Keep a node's tasks but give it no new ones."""
    _node_op(c, lab, name, f"pause {node}", labs.set_availability, node, "pause")


@lab_task(iterable=["add", "remove"], help={
    "node": "node name", "add": "key=value to add (repeatable)", "remove": "key to remove (repeatable)",
    "lab": LAB_HELP, "name": OLD_NAME_HELP})
def label(c, node, add=None, remove=None, lab=None, name=None):
    """Add or remove node labels (for placement constraints)."""
    pairs = dict(_key_value(item) for item in add or [])
    _node_op(c, lab, name, f"labels of {node}", labs.set_labels, node, pairs, list(remove or []))


@lab_task(help={"node": "node name", "lab": LAB_HELP, "name": OLD_NAME_HELP})
def leave(c, node, lab=None, name=None):
    """Make a node leave the swarm and remove it from the node list."""
    _node_op(c, lab, name, f"{node} left", labs.leave_swarm, node)


@lab_task(help={"node": "node name", "role": "worker (default) or manager", "lab": LAB_HELP,
                "name": OLD_NAME_HELP})
def join(c, node, role="worker", lab=None, name=None):
    """Join a lab node to the swarm as a worker or manager."""
    _node_op(c, lab, name, f"{node} joined as {role}", labs.join_swarm, node, role)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise Exit(f"error: {text!r} is not key=value", code=2)
    return key, value


# -- visualizer --------------------------------------------------------------------------------


@lab_task(name="up", help={"lab": LAB_HELP, "port": "port to serve on (default: the first free one from 8000)",
                           "host": "address to listen on (default 127.0.0.1; 0.0.0.0 to show it to a class)",
                           "name": OLD_NAME_HELP})
def viz_up(c, lab=None, port=None, host="127.0.0.1", name=None):
    """Serve the live visualizer of the lab's nodes and tasks (in the background)."""
    viz, started = labs.visualizer_up(_lab(c, lab, name), None if port is None else _whole(port), host)
    print(f"visualizer {'started' if started else 'runs already'}: {viz.url}")


@lab_task(name="down", help={"lab": LAB_HELP, "name": OLD_NAME_HELP})
def viz_down(c, lab=None, name=None):
    """Stop the lab's visualizer."""
    print("visualizer stopped" if labs.visualizer_down(_lab(c, lab, name)) else "no visualizer was running")


# -- services ----------------------------------------------------------------------------------


DETACH_HELP = "return at once instead of waiting until every task runs (as `docker service create --detach`)"
TIMEOUT_HELP = "seconds to wait for the tasks (default: from the update settings, at least 120)"


def _wait_options(detach, timeout) -> services.WaitOptions:
    if timeout is None:
        return services.WaitOptions(detach=detach)
    try:
        seconds = float(timeout)
    except ValueError:
        raise Exit(f"error: --timeout {timeout!r} is not a number of seconds", code=2) from None
    if seconds <= 0:
        raise Exit("error: --timeout must be more than 0 seconds", code=2)
    return services.WaitOptions(detach=detach, timeout=seconds)


@lab_task(name="create", iterable=["publish", "constraint", "env"], help={
    "image": "image (swarmdeck/web:1 means the lab registry's copy)",
    "name": "the service's name, as in `docker service create --name` (default: from the image, e.g. web)",
    "replicas": "number of tasks (default 1)", "global_": "one task per node instead of replicas",
    "publish": "PUBLISHED:TARGET[/udp][:host] (repeatable)", "constraint": "e.g. node.role==worker (repeatable)",
    "env": "KEY=VALUE (repeatable)", "endpoint_mode": "vip (default) or dnsrr",
    "update_parallelism": "tasks updated at once", "update_delay": "seconds between update batches",
    "update_order": "stop-first or start-first", "update_failure_action": "pause, continue or rollback",
    "health_cmd": "a shell healthcheck command", "lab": LAB_HELP, "detach": DETACH_HELP, "timeout": TIMEOUT_HELP})
def service_create(c, image, name=None, replicas=1, global_=False, publish=None, constraint=None, env=None,
                   endpoint_mode="vip", update_parallelism=1, update_delay=0.0, update_order="stop-first",
                   update_failure_action="pause", lab=None, health_cmd=None, detach=False, timeout=None):
    """Create a service and wait until its tasks run: service.create --name web IMAGE."""
    service = name or services.default_name(image)
    request = services.ServiceRequest(
        service, image, None if global_ else _whole(replicas), tuple(services.Publish.parse(p) for p in publish or []),
        tuple(constraint or []), tuple(env or []), endpoint_mode, _whole(update_parallelism), float(update_delay),
        update_order, update_failure_action, health_cmd)
    options = _wait_options(detach, timeout)
    reporter = ConsoleReporter()
    result = labs.create_service(_lab(c, lab), request, reporter, options)
    reporter.result(f"service {service} created: {result}", True)


@lab_task(name="ls", help={"lab": LAB_HELP, "name": OLD_NAME_HELP})
def service_ls(c, lab=None, name=None):
    """List services with their mode, replicas and image."""
    print(labs.service_listing(_lab(c, lab, name)))


@lab_task(name="ps", help={"service": "service name", "lab": LAB_HELP, "name": "(not the lab: use --lab)"})
def service_ps(c, service, lab=None, name=None):
    """List a service's tasks: slot, node, state, image."""
    _not_the_lab("service.ps", name)
    print(task_table(labs.service_tasks(_lab(c, lab), service)))


@lab_task(name="scale", help={"target": "NAME=REPLICAS", "lab": LAB_HELP, "name": "(not the lab: use --lab)",
                              "detach": DETACH_HELP, "timeout": TIMEOUT_HELP})
def service_scale(c, target, lab=None, name=None, detach=False, timeout=None):
    """Set a replicated service's number of tasks and wait for them: service.scale web=9."""
    _not_the_lab("service.scale", name)
    service, replicas = _key_value(target)
    options = _wait_options(detach, timeout)
    reporter = ConsoleReporter()
    changed, result = labs.scale_service(_lab(c, lab), service, _whole(replicas), reporter, options)
    reporter.result(f"{service} scaled to {replicas}: {result}", changed)


@lab_task(name="update", help={
    "service": "service name", "image": "new image", "replicas": "new number of tasks",
    "parallelism": "tasks updated at once", "delay": "seconds between batches",
    "order": "stop-first or start-first", "failure_action": "pause, continue or rollback",
    "force": "restart every task even without a change (rebalances)", "lab": LAB_HELP,
    "name": "(not the lab: use --lab)", "detach": "return at once instead of waiting until Swarm completed the update",
    "timeout": TIMEOUT_HELP})
def service_update(c, service, image=None, replicas=None, parallelism=None, delay=None, order=None,
                   failure_action=None, force=False, lab=None, name=None, detach=False, timeout=None):
    """Change a service's image, replicas or update settings (rolling update) and wait until it completed."""
    _not_the_lab("service.update", name)
    options = _wait_options(detach, timeout)
    reporter = ConsoleReporter()
    result = labs.update_service(
        _lab(c, lab), service, reporter, options, image=image, replicas=None if replicas is None else _whole(replicas),
        parallelism=None if parallelism is None else _whole(parallelism),
        delay=None if delay is None else float(delay), order=order, failure_action=failure_action, force=force)
    reporter.result(f"service {service} updated: {result}", True)


@lab_task(name="rollback", help={"service": "service name", "lab": LAB_HELP, "name": "(not the lab: use --lab)",
                                 "detach": "return at once instead of waiting until Swarm completed the rollback",
                                 "timeout": TIMEOUT_HELP})
def service_rollback(c, service, lab=None, name=None, detach=False, timeout=None):
    """Go back to a service's previous version and wait until the rollback completed."""
    _not_the_lab("service.rollback", name)
    options = _wait_options(detach, timeout)
    reporter = ConsoleReporter()
    result = labs.rollback_service(_lab(c, lab), service, reporter, options)
    reporter.result(f"service {service} rolled back: {result}", True)


@lab_task(name="rm", help={"service": "service name", "lab": LAB_HELP, "name": "(not the lab: use --lab)"})
def service_rm(c, service, lab=None, name=None):
    """Remove a service and its tasks."""
    _not_the_lab("service.rm", name)
    labs.remove_service(_lab(c, lab), service)
    ConsoleReporter().result(f"service {service} removed", True)


def _whole(text) -> int:
    try:
        return int(text)
    except ValueError:
        raise Exit(f"error: {text!r} is not a whole number", code=2) from None


# -- stacks ------------------------------------------------------------------------------------


@lab_task(name="deploy", help={"file": "a compose file, or a shipped stack: " + ", ".join(stacks.shipped()),
                               "stack": "the stack's name", "lab": LAB_HELP, "name": "(not the lab: use --lab)",
                               "detach": "return once deployed instead of waiting until every service's tasks run",
                               "timeout": TIMEOUT_HELP})
def stack_deploy(c, file, stack, lab=None, name=None, detach=False, timeout=None):
    """Deploy (or update) a stack from a compose file and wait until its services run."""
    _not_the_lab("stack.deploy", name)
    options = _wait_options(detach, timeout)
    reporter = ConsoleReporter()
    result = labs.deploy_stack(_lab(c, lab), stack, file, reporter, options)
    reporter.result(result, True)


@lab_task(name="rm", help={"stack": "the stack's name", "lab": LAB_HELP, "name": "(not the lab: use --lab)"})
def stack_rm(c, stack, lab=None, name=None):
    """Remove a stack and wait until its tasks and networks are gone (and its load-balancer routes)."""
    _not_the_lab("stack.rm", name)
    reporter = ConsoleReporter()
    reporter.result(labs.remove_stack(_lab(c, lab), stack, reporter), True)


@lab_task(name="meshless", help={"file": "a compose file, or a shipped stack: " + ", ".join(stacks.shipped()),
                                 "stack": "the stack's name (its routes are kept under it)", "lab": LAB_HELP})
def stack_meshless(c, file, stack, lab=None):
    """The compose file for the real `docker stack deploy` on this lab: prints its path (rewritten for a
    lab without routing mesh, its published ports routed by the load balancer; unchanged elsewhere)."""
    print(labs.meshless_stack(_lab(c, lab), stack, file, ConsoleReporter()))


# -- lessons -----------------------------------------------------------------------------------


@lab_task(name="ls")
def lesson_ls(c):
    """The lessons: each tutorial of ../shared/seeds/ as a replayable, checked command sequence."""
    for lesson in labs.lessons():
        print(f"{lesson.name:<20} {len(lesson.steps):>2} steps  {lesson.title}")
        print(f"{'':<20} from {lesson.source}")


@lab_task(name="run", help={"lesson": "the lesson's name (lesson.ls lists them)", "lab": LAB_HELP,
                            "step": "start at this step (1: from the start, cleaning up first)",
                            "until": "stop after this step (default: the last)"})
def lesson_run(c, lesson, lab=None, step=1, until=None):
    """Replay a lesson on a lab through the real docker CLI: each step shown, explained and checked;
    stops (exit 1) on the first step that does not hold."""
    reporter = ConsoleReporter()
    result = labs.run_lesson(_lab(c, lab), lesson, reporter, int(step), int(until) if until else None)
    reporter.result(result, False)


# -- demos -------------------------------------------------------------------------------------


SKIPPED = 77  # a demo's exit code when it cannot run here (automake's and meson's code for a skipped test)


def _demo(c, lab, name, demo, **options):
    report = labs.demo(_lab(c, lab, name), demo, ConsoleReporter(), **options)
    if report.skipped:
        raise Exit(code=SKIPPED)
    if not report.passed:
        raise Exit(code=1)


@lab_task(help={"lab": LAB_HELP, "node": "the worker to kill (default: one that runs tasks)",
                "replicas": "replicas of the demo service (default 10)", "name": OLD_NAME_HELP})
def failover(c, lab=None, node=None, replicas=10, name=None):
    """Kill a worker: watch Swarm reschedule; timeline, figures, verdict."""
    _demo(c, lab, name, "failover", node=node, replicas=_whole(replicas))


@lab_task(help={"lab": LAB_HELP, "replicas": "replicas of the demo service (default 10)", "name": OLD_NAME_HELP})
def leader(c, lab=None, replicas=10, name=None):
    """Kill the leader manager: election, writes, serving; timeline and verdict."""
    _demo(c, lab, name, "leader", replicas=_whole(replicas))


@lab_task(name="rolling-update", help={"lab": LAB_HELP, "replicas": "replicas (default 6)", "name": OLD_NAME_HELP})
def rolling_update(c, lab=None, replicas=6, name=None):
    """v1 -> v2 with zero failed requests, rollback, then a broken v3 that Swarm stops."""
    _demo(c, lab, name, "rolling-update", replicas=_whole(replicas))


@lab_task(name="scale", help={"lab": LAB_HELP, "name": OLD_NAME_HELP})
def scale_demo(c, lab=None, name=None):
    """Scale a service 6 -> 9 -> 3 and time each step."""
    _demo(c, lab, name, "scale")


@lab_task(name="drain", help={"lab": LAB_HELP, "node": "the node to drain (default manager1)", "name": OLD_NAME_HELP})
def drain_demo(c, lab=None, node=None, name=None):
    """Drain a node: its tasks move, it takes no new ones; then activate it."""
    _demo(c, lab, name, "drain", node=node)


@lab_task(name="constraints", help={"lab": LAB_HELP, "node": "the node to label mem=max (default: last worker)",
                                    "name": OLD_NAME_HELP})
def constraints_demo(c, lab=None, node=None, name=None):
    """Place tasks by node label (mem=max) and by hostname."""
    _demo(c, lab, name, "constraints", node=node)


@lab_task(name="global", help={"lab": LAB_HELP, "node": "the node that leaves and joins (default: last worker)",
                               "name": OLD_NAME_HELP})
def global_demo(c, lab=None, node=None, name=None):
    """A global service: one task per node, and one for a node that joins later."""
    _demo(c, lab, name, "global", node=node)


@lab_task(name="quorum", help={"lab": LAB_HELP, "name": OLD_NAME_HELP})
def quorum_demo(c, lab=None, name=None):
    """Lose 2 of 3 managers: writes refused, tasks serve; recover two ways."""
    _demo(c, lab, name, "quorum")


@lab_task(name="handoff", help={"lab": LAB_HELP, "name": OLD_NAME_HELP})
def handoff_demo(c, lab=None, name=None):
    """Demote the leader (a planned handoff), then kill the next one: both timed side by side."""
    _demo(c, lab, name, "handoff")


@lab_task(name="secrets", help={
    "lab": LAB_HELP, "secret_file": "a file holding the secret's first value (default: a random one, never shown)",
    "rotated_file": "a file holding the value it is rotated to (default: a random one, never shown)",
    "name": OLD_NAME_HELP})
def secrets_demo(c, lab=None, secret_file=None, rotated_file=None, name=None):
    """A secret and a config in a service's tasks only; the secret rotated by a service update."""
    _demo(c, lab, name, "secrets", secret_file=secret_file, rotated_file=rotated_file)


@lab_task(name="encrypted-overlay", help={
    "lab": LAB_HELP, "client": "the node of the asking task (default: the last but one node)",
    "server": "the node of the answering task, where the capture runs (default: the last node)",
    "name": OLD_NAME_HELP})
def encrypted_overlay_demo(c, lab=None, client=None, server=None, name=None):
    """Capture the traffic of a plain and an encrypted overlay: VXLAN in the clear, then ESP (exit 77 on a kernel without ESP)."""
    _demo(c, lab, name, "encrypted-overlay", client=client, server=server)


@lab_task(name="autolock", help={"lab": LAB_HELP, "node": "the manager to restart (default: the last manager)",
                                 "name": OLD_NAME_HELP})
def autolock_demo(c, lab=None, node=None, name=None):
    """Autolock on: a restarted manager stays locked until unlocked with the key (shown once); autolock off again."""
    _demo(c, lab, name, "autolock", node=node)


@lab_task(name="ca-rotate", help={"lab": LAB_HELP, "node": "the worker that leaves and joins again (default: the last)",
                                  "name": OLD_NAME_HELP})
def ca_rotate_demo(c, lab=None, node=None, name=None):
    """Rotate the swarm's root CA (every certificate's issuer changes) and the join tokens (the old one is refused)."""
    _demo(c, lab, name, "ca-rotate", node=node)


@lab_task(name="partition", help={"lab": LAB_HELP, "node": "the worker to cut off (default: one with tasks)",
                                  "name": OLD_NAME_HELP})
def partition_demo(c, lab=None, node=None, name=None):
    """Cut a worker off the network: duplicates, then convergence after healing."""
    _demo(c, lab, name, "partition", node=node)


@lab_task(name="mesh", help={"lab": LAB_HELP, "name": OLD_NAME_HELP})
def mesh_demo(c, lab=None, name=None):
    """Ask every node's published port: routing mesh, or why not and what instead."""
    _demo(c, lab, name, "mesh")


@lab_task(name="all", iterable=["only"], help={"lab": LAB_HELP, "only": "run just this demo (repeatable)",
                                               "name": OLD_NAME_HELP})
def all_demos(c, lab=None, only=None, name=None):
    """The workshop sequence of every demo, with a summary table (a SKIP, a demo this machine cannot run, is no failure)."""
    chosen_lab = _lab(c, lab, name)
    reports = labs.workshop(chosen_lab, list(only or []), ConsoleReporter())
    print(demo_summary(chosen_lab, reports))
    if any(not r.passed and not r.skipped for r in reports):
        raise Exit(code=1)


@lab_task(name="plot", help={"lab": LAB_HELP, "report": "the saved report to draw, DEMO-YYYYmmdd-HHMMSS "
                                                       "(default: every report of the lab)",
                             "size": "WIDTHxHEIGHT in pixels (default 1600x900)", "name": OLD_NAME_HELP})
def plot_demo(c, lab=None, report=None, size=None, name=None):
    """Draw saved demo reports' plots again (made before the plots changed, or for another screen)."""
    for path in labs.redraw_reports(_lab(c, lab, name), report, size):
        print(path)


# -- registry ----------------------------------------------------------------------------------


@lab_task(help={"image": "an image on this machine's engine, e.g. swarmdeck/web:1", "lab": LAB_HELP,
                "name": OLD_NAME_HELP})
def push(c, image, lab=None, name=None):
    """Side-load an image from this machine into the lab registry."""
    print(labs.push_image(_lab(c, lab, name), image))


@lab_task(name="ls", help={"lab": LAB_HELP, "name": OLD_NAME_HELP})
def registry_ls(c, lab=None, name=None):
    """List the lab registry's repositories and tags; stand-ins (image.tutorial) say what they are."""
    for line in registry_lines(labs.registry_listing(_lab(c, lab, name))):
        print(line)


# -- images ------------------------------------------------------------------------------------


@lab_task(help={"method": "auto | debootstrap | dockerfile (docker format)", "mirror": "Debian mirror URL",
                "rebuild": "build anew",
                "format": "docker (container nodes, default), qcow2 (libvirt VMs) or box (vagrant-libvirt)"})
def build(c, method="auto", mirror=None, rebuild=False, format_="docker"):
    """Build a node image, offline with debootstrap and cached: docker, qcow2 or box."""
    print(labs.build_image(format_, ConsoleReporter(), method=method, mirror=mirror, rebuild=rebuild))


@lab_task(help={"dry_run": "only list what would go"})
def prune(c, dry_run=False):
    """Remove images of older recipes: VM images, pool volumes, Vagrant boxes, node and stand-in images."""
    removed = labs.prune_images(dry_run=dry_run)
    for line in removed:
        print(("would remove " if dry_run else "removed ") + line)
    print(f"{len(removed)} old image artefact(s) {'found' if dry_run else 'removed'}")


@lab_task(help={"lab": "push to this lab's registry when it is up (default: as for every task)",
                "name": OLD_NAME_HELP})
def demo(c, lab=None, name=None):
    """Build swarmdeck/web:1,2,3 and push them to the lab registry if it is up."""
    for line in labs.demo_images_for(_lab(c, lab, name), ConsoleReporter()):
        print(line)


@lab_task(iterable=["only"], help={
    "lab": "push to this lab's registry when it is up (default: as for every task)",
    "only": "build and push just this stand-in and what it is built from (repeatable): "
            + ", ".join(s.name for s in tutorial_images.STAND_INS),
    "mirror": "Debian mirror URL (default: the one this machine's apt sources name)", "rebuild": "build anew",
    "name": OLD_NAME_HELP})
def tutorial(c, lab=None, only=None, mirror=None, rebuild=False, name=None):
    """Build the tutorials' Docker Hub images as offline stand-ins; push them under the Hub's names."""
    for line in labs.tutorial_images_for(_lab(c, lab, name), ConsoleReporter(), only=tuple(only or ()),
                                         mirror=mirror, rebuild=rebuild):
        print(line)


# -- class -------------------------------------------------------------------------------------

CLASS_HELP = "the class's name (its labs are NAME-s01...; default: class)"


def _class(name: str) -> str:
    from orchestrator.classroom import roster
    roster.check_class_name(name)
    return name


@lab_task(name="up", help={
    "students": "how many students (labs NAME-s01...); more than the class has adds labs, fewer is refused",
    "roster": "a file with one student a line: one lab each, named after the student (instead of --students)",
    "spec": "the lab template (a lab.yaml; default ./lab.yaml, else 3 managers + 2 workers); limits default to "
            "memory 192m, cpus 1, pids 1024 per node",
    "class": CLASS_HELP, "address": "the address students reach this machine at (default: found)",
    "bind": "where the labs' SSH doors listen (default 0.0.0.0)", "parallel": "labs made at once (default: sized to the machine)",
    "hosts": "a hosts inventory (YAML: the local engine and remote ones over ssh://, each with a capacity); each lab "
             "lives wholly on one, placed by free capacity (default: the class's inventory, else this machine)",
})
def class_up(c, students=None, roster=None, spec=None, class_="class", address="", bind="0.0.0.0", parallel=0,
             hosts=None):
    """Make a class: one lab per student from one spec, in parallel, each with its SSH door and snapshot."""
    from orchestrator.classroom import lifecycle
    template = spec_load.load_spec(spec, {}, {})
    options = lifecycle.ClassOptions(students=int(students) if students is not None else None, roster=roster,
                                     address=address, bind=bind, parallel=int(parallel), hosts=hosts)
    result = lifecycle.up(_class(class_), template, options, ConsoleReporter())
    ready = len(result.record.seats) - len(result.failed)
    print(f"class {class_}: {ready} of {len(result.record.seats)} labs ready in {result.seconds:.0f}s")
    for lab, error in sorted(result.failed.items()):
        print(f"  {lab} FAILED (tried twice): {error}")
    if result.failed:
        raise Exit(f"error: {len(result.failed)} lab(s) failed; run class.up --class {class_} again to retry them "
                   "(the others stay up)", code=1)


@lab_task(name="status", help={"class": CLASS_HELP, "json": "print JSON for scripts"})
def class_status(c, class_="class", json_=False):
    """Every lab of the class: host, nodes ready/total, leader, services, use against limits, last change."""
    from orchestrator.classroom import lifecycle
    result = lifecycle.status(_class(class_))
    print(json.dumps(result, indent=2) if json_ else class_table(result))


@lab_task(name="cards", help={"class": CLASS_HELP, "out": "folder for cards.html and cards.pdf (default: the "
                                                          "class's records)", "no_pdf": "write the HTML only"})
def class_cards(c, class_="class", out=None, no_pdf=False):
    """Write one card per student (HTML, 8 to an A4 page, and a PDF): lab, nodes, how to connect, secret."""
    from orchestrator.classroom import cards
    html_path, pdf_path, count = cards.write(_class(class_), out, make_pdf=not no_pdf)
    print(f"{count} cards: {html_path}" + (f" and {pdf_path}" if pdf_path else "") + " (0600: they hold the secrets)")


@lab_task(name="reset", positional=["student"], help={
    "student": "the student's id (s01, or the roster's name) or lab", "all": "every lab of the class",
    "class": CLASS_HELP})
def class_reset(c, student=None, all_=False, class_="class"):
    """Put a student's lab back as class.up left it: formed swarm, nothing of the student's, every node up."""
    from orchestrator.classroom import lifecycle
    if bool(student) == bool(all_):
        raise Exit("error: class.reset takes one STUDENT or --all", code=2)
    times = lifecycle.reset(_class(class_), None if all_ else student, ConsoleReporter())
    for lab, seconds in sorted(times.items()):
        print(f"{lab} reset in {seconds:.1f}s")


@lab_task(name="down", help={"class": CLASS_HELP})
def class_down(c, class_="class"):
    """Remove every lab of the class and its records; nothing else."""
    from orchestrator.classroom import lifecycle
    removed = lifecycle.down(_class(class_), ConsoleReporter())
    print(f"class {class_} removed: {len(removed)} labs")


lab_ns = Collection("lab", up, down, status, lab_ls, ssh, env, ip, inspect_node, scp, context_, add_node,
                    remove_node, stop_node, start_node, kill_node, pause_node, doctor_)
swarm = Collection("swarm", swarm_init, swarm_status, tokens, promote, demote, drain, activate, pause, label, leave,
                   join)
service = Collection("service", service_create, service_ls, service_ps, service_scale, service_update,
                     service_rollback, service_rm)
stack = Collection("stack", stack_deploy, stack_rm, stack_meshless)
registry_ns = Collection("registry", push, registry_ls)
image = Collection("image", build, demo, tutorial, prune)
demo = Collection("demo", failover, leader, rolling_update, scale_demo, drain_demo, constraints_demo, global_demo,
                  quorum_demo, partition_demo, mesh_demo, handoff_demo, secrets_demo, encrypted_overlay_demo,
                  autolock_demo, ca_rotate_demo, all_demos, plot_demo)
viz = Collection("viz", viz_up, viz_down)
class_ns = Collection("class", class_up, class_status, class_cards, class_reset, class_down)
ns = Collection(lab_ns, swarm, service, stack, Collection("lesson", lesson_ls, lesson_run), demo, registry_ns, image, viz,
                class_ns)
# Every spec key a plain value can set, so that INVOKE_LAB_* environment variables are read
# (Invoke reads only variables whose keys its config declares).
ns.configure({"lab": spec_load.settable_keys()})

program = Program(namespace=ns, name="swarmdeck", version="0.1.0")


def main() -> None:
    """The `swarmdeck` command: the same task tree as `invoke` in the checkout."""
    try:
        program.run(sys.argv)
        sys.stdout.flush()
    except AmbiguousMergeError as err:
        # Invoke merges its config files over the declared lab sections before any task runs
        given = str(err).rpartition(" with ")[2].partition(" (")[2][:-1]  # "<class 'str'> ('abc')"
        print("error: an Invoke config file (invoke.yaml, -f FILE) gives a plain value where the lab spec has a "
              "section: `lab:` and its network, registry, swarm, demos and vagrant must be mappings, not "
              f"{given}\n  hint: fix that file and run again", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:
        _quiet_stdout()
