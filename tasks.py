"""swarmdeck: Docker Swarm labs in one command (`invoke --list` shows every task)."""

from __future__ import annotations

import functools
import json
import sys

import docker.errors
import requests
from invoke import Collection, Exit, Program, task

from orchestrator import lab as labs
from orchestrator.output import status_table
from provision import config, doctor, engine, images
from provision.errors import LabError, redact
from provision.report import ConsoleReporter

DEFAULT_LAB = "swarmdeck"
NAME_HELP = "the lab's name (default: the spec's, else 'swarmdeck')"


def lab_task(*args, **kwargs):
    """@task that turns LabError into a clean exit with a hint: no traceback for expected failures."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(c, *a, **kw):
            try:
                return fn(c, *a, **kw)
            except LabError as err:
                raise Exit(f"error: {err.user_message()}", code=err.exit_code) from err
            except (docker.errors.DockerException, requests.RequestException) as err:
                # A safety net: engine failures we did not foresee still get a clean message.
                raise Exit(f"error: a Docker engine call failed: {redact(str(err))}", code=1) from err
            except KeyboardInterrupt:
                raise Exit("interrupted", code=130) from None

        return task(wrapper, **kwargs)

    return decorate(args[0]) if args and callable(args[0]) else decorate


def _spec(c, spec=None, **overrides):
    return config.load_spec(spec, dict(c.config.get("lab") or {}), overrides)


def _name(c, name):
    return name or _spec(c).name


# -- lab ---------------------------------------------------------------------------------------


@lab_task(help={
    "name": NAME_HELP, "spec": "a lab.yaml file (default: ./lab.yaml if present)",
    "managers": "number of managers (default 3)", "workers": "number of workers (default 2)",
    "subnet": "the lab network's IPv4 CIDR, or 'auto'", "provider": "docker (default)",
    "no_registry": "run no private registry", "keep": "keep what was created if up fails",
    "image_method": "node image build: auto | debootstrap | dockerfile", "mirror": "Debian mirror URL for debootstrap",
})
def up(c, name=None, spec=None, managers=None, workers=None, subnet=None, provider=None, no_registry=False,
       keep=False, image_method="auto", mirror=None):
    """Create the lab (3 managers + 2 workers + registry); safe to re-run."""
    overrides = {"name": name, "managers": managers, "workers": workers, "provider": provider}
    if subnet:
        overrides["network"] = {"subnet": subnet}
    if no_registry:
        overrides["registry"] = {"enabled": False}
    lab_spec = _spec(c, spec, **overrides)
    options = labs.UpOptions(keep=keep, image_method=image_method, mirror=mirror)
    result = labs.up(lab_spec, ConsoleReporter(), options)
    print(status_table(result))


@lab_task(help={"name": NAME_HELP})
def down(c, name=None):
    """Remove the lab's containers, networks, volumes and state; nothing else."""
    lab = _name(c, name)
    counts = labs.down(lab)
    print(f"lab {lab} removed: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


@lab_task(help={"name": NAME_HELP, "json": "print JSON for scripts"})
def status(c, name=None, json_=False):
    """Show nodes, roles, leader, addresses and the registry."""
    result = labs.status(_name(c, name))
    print(json.dumps(result.to_json(), indent=2) if json_ else status_table(result))


@lab_task(help={"node": "node name, e.g. manager1", "name": NAME_HELP, "command": "run this instead of a shell"})
def ssh(c, node, name=None, command=None):
    """Log into a node with the lab's SSH key (or run --command there)."""
    code = labs.ssh(_name(c, name), node, command)
    if code:
        raise Exit(code=code)


@lab_task(help={"node": "node name, e.g. manager1", "name": NAME_HELP})
def env(c, node, name=None):
    """Print exports that point `docker` at a node: eval "$(invoke lab.env manager1)"."""
    print(labs.env(_name(c, name), node), end="")


@lab_task(name="stop", help={"node": "node name", "name": NAME_HELP})
def stop_node(c, node, name=None):
    """Shut a node down cleanly (its engine stops first)."""
    labs.power(_name(c, name), node, "stop", ConsoleReporter())


@lab_task(name="start", help={"node": "node name", "name": NAME_HELP})
def start_node(c, node, name=None):
    """Start a stopped (or killed) node again."""
    labs.power(_name(c, name), node, "start", ConsoleReporter())


@lab_task(name="kill", help={"node": "node name", "name": NAME_HELP})
def kill_node(c, node, name=None):
    """Power a node off hard (SIGKILL), as for a failover demo."""
    labs.power(_name(c, name), node, "kill", ConsoleReporter())


@lab_task(name="doctor", help={"name": NAME_HELP})
def doctor_(c, name=None):
    """Check this machine for what labs need, each with a fix-it line."""
    results = doctor.run_checks()
    print(doctor.render(results))
    if any(r.level == "fail" for r in results):
        raise Exit(code=1)


# -- swarm -------------------------------------------------------------------------------------


@lab_task(name="init", help={"name": NAME_HELP})
def swarm_init(c, name=None):
    """Form the swarm on an existing lab (no change if formed)."""
    print(status_table(labs.swarm_init(_name(c, name), ConsoleReporter())))


@lab_task(name="status", help={"name": NAME_HELP, "json": "print JSON for scripts"})
def swarm_status(c, name=None, json_=False):
    """Show the swarm's nodes: role, leader, availability, state."""
    status(c, name=name, json_=json_)


@lab_task(help={"name": NAME_HELP, "rotate": "rotate both tokens first"})
def tokens(c, name=None, rotate=False):
    """Print the worker and manager join tokens (secrets: handle with care)."""
    found = labs.join_tokens(_name(c, name), rotate=rotate)
    print(f"worker  {found.worker}\nmanager {found.manager}")


# -- registry ----------------------------------------------------------------------------------


@lab_task(help={"image": "an image on this machine's engine, e.g. swarmdeck/web:1", "name": NAME_HELP})
def push(c, image, name=None):
    """Side-load an image from this machine into the lab registry."""
    print(labs.push_image(_name(c, name), image))


@lab_task(name="ls", help={"name": NAME_HELP})
def registry_ls(c, name=None):
    """List the lab registry's repositories and tags."""
    for repository, tags in sorted(labs.registry_catalog(_name(c, name)).items()):
        print(f"{repository}: {', '.join(tags) or '-'}")


# -- images ------------------------------------------------------------------------------------


@lab_task(help={"method": "auto | debootstrap | dockerfile", "mirror": "Debian mirror URL", "rebuild": "build anew"})
def build(c, method="auto", mirror=None, rebuild=False):
    """Build the node image (offline with debootstrap; cached)."""
    print(images.ensure_node_image(engine.local_client(), ConsoleReporter(), method=method, mirror=mirror,
                                   rebuild=rebuild))


@lab_task(help={"name": "push to this lab's registry when it is up (default: the spec's lab)"})
def demo(c, name=None):
    """Build swarmdeck/web:1,2,3 and push them to the lab registry if it is up."""
    for line in labs.demo_images_for(_name(c, name), ConsoleReporter()):
        print(line)


lab = Collection("lab", up, down, status, ssh, env, stop_node, start_node, kill_node, doctor_)
swarm = Collection("swarm", swarm_init, swarm_status, tokens)
registry_ns = Collection("registry", push, registry_ls)
image = Collection("image", build, demo)
ns = Collection(lab, swarm, registry_ns, image)
ns.configure({"lab": {}})

program = Program(namespace=ns, name="swarmdeck", version="0.1.0")


def main() -> None:
    """The `swarmdeck` command: the same task tree as `invoke` in the checkout."""
    program.run(sys.argv)
