"""Form the swarm, as kind's create pipeline: small steps, each safe to re-run.

First manager init; other managers join one at a time (each join changes the
Raft membership, which must settle before the next); workers join in parallel;
wait until every node is Ready (a node's hostname is known only then); labels. A formed swarm is left unchanged.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from orchestrator import swarm
from orchestrator.clients import ClientPool
from orchestrator.inspect import swarm_nodes
from provision import cli
from provision.errors import PartialFailure
from provision.machine import LabPlan, NodePlan
from provision.report import Reporter
from provision.wait import NotYet, wait_until

READY_TIMEOUT = 90


@dataclass
class BootstrapContext:
    plan: LabPlan
    clients: ClientPool
    reporter: Reporter
    tokens: swarm.JoinTokens | None = None
    members: set[str] = field(default_factory=set)

    @property
    def leader_client(self):
        return self.clients[self.plan.first_manager]


def init_first_manager(ctx: BootstrapContext) -> None:
    first = ctx.plan.first_manager
    changed = swarm.init(ctx.clients[first], first.address, ctx.plan.spec.swarm)
    ctx.tokens = swarm.tokens(ctx.leader_client)
    ctx.members = swarm.member_ids(ctx.leader_client)
    ctx.reporter.result(f"swarm init on {first.name} ({first.address})", changed)


def fit_ingress_mtu(ctx: BootstrapContext) -> None:
    changed = swarm.ensure_ingress_mtu(ctx.leader_client, ctx.plan.mtu)
    ctx.reporter.result(f"ingress overlay MTU fits the lab network ({swarm.overlay_mtu(ctx.plan.mtu)} or less)", changed)


def _join(ctx: BootstrapContext, node: NodePlan) -> bool:
    assert ctx.tokens is not None
    return swarm.join(ctx.clients[node], node.name, node.address, [ctx.plan.first_manager.address],
                      ctx.tokens.for_role(node.role), ctx.members)


def join_managers(ctx: BootstrapContext) -> None:
    for node in [n for n in ctx.plan.nodes if n.is_manager][1:]:
        ctx.reporter.result(f"{node.name} joined as manager", _join(ctx, node))


def join_workers(ctx: BootstrapContext) -> None:
    workers = [n for n in ctx.plan.nodes if not n.is_manager]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(workers)))) as pool:
        futures = {n.name: pool.submit(_join, ctx, n) for n in workers}
    failures = {name: f.exception() for name, f in futures.items() if f.exception() is not None}
    if failures:
        raise PartialFailure("joining workers", failures)  # type: ignore[arg-type]
    for name, future in futures.items():
        ctx.reporter.result(f"{name} joined as worker", future.result())


def apply_labels(ctx: BootstrapContext) -> None:
    ids = {n.hostname: n.id for n in swarm_nodes(ctx.leader_client)}
    for node in ctx.plan.nodes:
        if node.labels:
            changed = swarm.ensure_labels(ctx.leader_client, ids[node.name], dict(node.labels))
            ctx.reporter.result(f"labels on {node.name}: {node.labels}", changed)


def wait_ready(ctx: BootstrapContext) -> None:
    expected = {n.name for n in ctx.plan.nodes}

    def all_ready() -> bool:
        nodes = swarm_nodes(ctx.leader_client)
        seen = {n.hostname for n in nodes}
        late = [f"{n.hostname}={n.state}" for n in nodes if n.hostname in expected and n.state != "ready"]
        late += [f"{name}=absent" for name in sorted(expected - seen)]
        late += [f"{n.hostname}=unreachable" for n in nodes if n.role == "manager" and n.reachability != "reachable"]
        if late:
            raise NotYet(", ".join(late))
        return True

    wait_until(all_ready, timeout=ctx.plan.scaled(READY_TIMEOUT),
               describe="every node to be Ready (and every manager reachable)",
               hint=f"{cli.command('lab.status')} shows which node lags; {cli.command('lab.doctor')} checks the host")
    ctx.reporter.result(f"{len(expected)} nodes ready", False)


STEPS = (init_first_manager, fit_ingress_mtu, join_managers, join_workers, wait_ready, apply_labels)


def bootstrap(plan: LabPlan, clients: ClientPool, reporter: Reporter) -> None:
    """Form (or confirm) the swarm of ``plan``. Tokens stay in memory only."""
    ctx = BootstrapContext(plan, clients, reporter)
    with reporter.step("forming the swarm"):
        for step in STEPS:
            step(ctx)
