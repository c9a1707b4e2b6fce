"""What a lesson step's outcome must be, asked of the swarm through the docker SDK.

Each check is a function ``(ctx, **args) -> (holds, seen)``: ``seen`` says what was found, in
words a student reads when the step does not hold. The runner asks a check again until it
holds or the step's time is up (Swarm converges in its own time). ``KINDS`` names each check's
arguments, for the lesson loader's validation.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable

import docker
import docker.errors

from orchestrator.meshless import NodeFacts, constraint_holds

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Context:
    """What the checks of one step may look at."""

    manager: docker.DockerClient
    entry_address: str  # the lab's entry point (load balancer or routing mesh)
    addresses: dict  # node name -> address
    output: str = ""  # the step command's output
    memory: dict = field(default_factory=dict)  # what a check keeps between its tries


@dataclass(frozen=True)
class Kind:
    fn: Callable
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


def _service(ctx: Context, name: str):
    try:
        return ctx.manager.services.get(name)
    except docker.errors.NotFound:
        return None


def _running(service) -> list[dict]:
    return [t for t in service.tasks(filters={"desired-state": "running"}) if t["Status"]["State"] == "running"]


def _hostnames(ctx: Context) -> dict[str, dict]:
    return {n.id: n.attrs for n in ctx.manager.nodes.list()}


def output_contains(ctx: Context, text: str) -> tuple[bool, str]:
    return text in ctx.output, f"the output {'contains' if text in ctx.output else 'lacks'} {text!r}"


def replicas(ctx: Context, service: str, running: int) -> tuple[bool, str]:
    found = _service(ctx, service)
    if found is None:
        return False, f"there is no service {service}"
    count = len(_running(found))
    return count == running, f"service {service}: {count} task(s) running, {running} wanted"


def global_on_every_node(ctx: Context, service: str) -> tuple[bool, str]:
    found = _service(ctx, service)
    if found is None:
        return False, f"there is no service {service}"
    nodes = [n for n in _hostnames(ctx).values()
             if n["Status"]["State"] == "ready" and n["Spec"].get("Availability") == "active"]
    on = {t["NodeID"] for t in _running(found)}
    return len(on) == len(nodes), f"service {service} runs on {len(on)} of the {len(nodes)} active nodes"


def node_availability(ctx: Context, node: str, availability: str) -> tuple[bool, str]:
    attrs = ctx.manager.nodes.get(node).attrs
    now = attrs["Spec"].get("Availability")
    return now == availability, f"node {node} is {now}"


def node_role(ctx: Context, node: str, role: str) -> tuple[bool, str]:
    now = ctx.manager.nodes.get(node).attrs["Spec"]["Role"]
    return now == role, f"node {node} is a {now}"


def node_label(ctx: Context, node: str, key: str, value: str) -> tuple[bool, str]:
    labels = ctx.manager.nodes.get(node).attrs["Spec"].get("Labels") or {}
    return labels.get(key) == value, f"node {node}'s labels: {labels or 'none'}"


def nodes_ready(ctx: Context, count: int) -> tuple[bool, str]:
    ready = [n for n in _hostnames(ctx).values() if n["Status"]["State"] == "ready"]
    return len(ready) == count, f"{len(ready)} node(s) ready, {count} expected"


def no_tasks_on(ctx: Context, service: str, node: str) -> tuple[bool, str]:
    found = _service(ctx, service)
    if found is None:
        return False, f"there is no service {service}"
    node_id = ctx.manager.nodes.get(node).id
    here = [t for t in _running(found) if t["NodeID"] == node_id]
    return not here, f"service {service} has {len(here)} task(s) running on {node}"


def placed(ctx: Context, service: str, constraint: str) -> tuple[bool, str]:
    """Every running task of ``service`` is on a node meeting ``constraint`` (node.role,
    node.hostname, node.labels.KEY with == or !=), and there is at least one."""
    found = _service(ctx, service)
    if found is None:
        return False, f"there is no service {service}"
    nodes = _hostnames(ctx)
    where = []
    for task in _running(found):
        attrs = nodes[task["NodeID"]]
        facts = NodeFacts(attrs["Description"]["Hostname"], attrs["Spec"]["Role"], attrs["Spec"].get("Labels") or {})
        where.append((facts.hostname, bool(constraint_holds(constraint, facts))))
    wrong = sorted({host for host, ok in where if not ok})
    shown = ", ".join(sorted({host for host, _ in where})) or "no node"
    return bool(where) and not wrong, f"service {service}'s running tasks are on {shown}" + (
        f"; {', '.join(wrong)} do(es) not meet {constraint}" if wrong else "")


def image(ctx: Context, service: str, image: str) -> tuple[bool, str]:
    """Every running task of ``service`` runs ``image`` (its name and tag, the digest aside)."""
    found = _service(ctx, service)
    if found is None:
        return False, f"there is no service {service}"
    images = sorted({t["Spec"]["ContainerSpec"]["Image"].split("@", 1)[0] for t in _running(found)})
    return images == [image], f"service {service}'s running tasks run {', '.join(images) or 'nothing'}"


def update_state(ctx: Context, service: str, state: str) -> tuple[bool, str]:
    found = _service(ctx, service)
    if found is None:
        return False, f"there is no service {service}"
    now = (found.attrs.get("UpdateStatus") or {}).get("State", "none")
    return now == state, f"service {service}'s last update is {now}"


def service_absent(ctx: Context, service: str) -> tuple[bool, str]:
    found = _service(ctx, service)
    return found is None, f"service {service} {'still exists' if found else 'is gone'}"


def task_replaced(ctx: Context, service: str) -> tuple[bool, str]:
    """A task of ``service`` ended on its own (failed or complete, not shut down by an update) and
    Swarm started another in its place."""
    found = _service(ctx, service)
    if found is None:
        return False, f"there is no service {service}"
    ended = [t for t in found.tasks() if t["Status"]["State"] in ("failed", "complete", "rejected")]
    return bool(ended), f"service {service}: {len(ended)} task(s) ended and replaced"


VISITS = re.compile(r"Visits:</b>\s*(\d+)")
HOSTNAME = re.compile(r"Hostname:</b>\s*([^<\s]+)")


def http(ctx: Context, port: int, contains: str = "", path: str = "/", node: str = "", status: int = 200,
         counter: bool = False) -> tuple[bool, str]:
    """An HTTP GET through the lab's entry point (or ``node``) answers ``status`` with ``contains``;
    with ``counter``, the get-started page's visit counter increases over several requests and
    more than one replica answers."""
    address = ctx.addresses[node] if node else ctx.entry_address
    url = f"http://{address}:{port}{path}"
    answers = []
    for _ in range(6 if counter else 1):
        try:
            with _direct.open(url, timeout=10) as response:
                answers.append((response.status, response.read().decode(errors="replace")))
        except urllib.error.HTTPError as err:
            answers.append((err.code, err.read().decode(errors="replace")))
        except OSError as err:
            return False, f"{url} does not answer: {err}"
    got, body = answers[-1]
    if got != status or contains not in body:
        return False, f"{url} answered {got}" + (f" without {contains!r}" if contains not in body else "")
    if not counter:
        return True, f"{url} answered {got}" + (f" with {contains!r}" if contains else "")
    visits = [int(m[1]) for _, b in answers if (m := VISITS.search(b))]
    hosts = {m[1] for _, b in answers if (m := HOSTNAME.search(b))}
    ok = len(visits) == len(answers) and visits == sorted(visits) and visits[-1] > visits[0] and len(hosts) > 1
    return ok, f"{url}: visits {visits}, from {len(hosts)} replica(s)"


KINDS: dict[str, Kind] = {
    "output_contains": Kind(output_contains, ("text",)),
    "replicas": Kind(replicas, ("service", "running")),
    "global_on_every_node": Kind(global_on_every_node, ("service",)),
    "node_availability": Kind(node_availability, ("node", "availability")),
    "node_role": Kind(node_role, ("node", "role")),
    "node_label": Kind(node_label, ("node", "key", "value")),
    "nodes_ready": Kind(nodes_ready, ("count",)),
    "no_tasks_on": Kind(no_tasks_on, ("service", "node")),
    "placed": Kind(placed, ("service", "constraint")),
    "image": Kind(image, ("service", "image")),
    "update_state": Kind(update_state, ("service", "state")),
    "service_absent": Kind(service_absent, ("service",)),
    "task_replaced": Kind(task_replaced, ("service",)),
    "http": Kind(http, ("port",), ("contains", "path", "node", "status", "counter")),
}


def ask(ctx: Context, kind: str, args: dict) -> tuple[bool, str]:
    """One try of a check; an engine error counts as not holding (yet), with its message."""
    try:
        return KINDS[kind].fn(ctx, **args)
    except docker.errors.NotFound as err:
        return False, f"not found: {err.explanation or err}"
    except docker.errors.APIError as err:
        return False, f"the manager said: {err.explanation or err}"
