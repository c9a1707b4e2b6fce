"""Form the swarm, as kind's create pipeline: small steps, each safe to re-run.

Find the swarm the lab's managers hold (orchestrator.repair): keep it, or init a new one
on the first manager when no manager holds one; nodes in another swarm leave it; other
managers join one at a time (each join changes the Raft membership, which must settle
before the next); workers join in parallel; stale entries of nodes that rejoined are
removed (their labels kept); wait until every node is Ready (a node's hostname is known
only then); labels. A formed swarm is left unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator import repair, swarm
from orchestrator.clients import ClientPool
from orchestrator.views import live_entries, swarm_nodes
from provision import hints
from provision.parallel import fan_out
from provision.plan import LabPlan, NodePlan
from provision.progress import Reporter
from provision.wait import NotYet, wait_until

READY_TIMEOUT = 90
ELECTION_TIMEOUT = 60  # Swarm elects a leader in 10-20 s; a slow engine answers `docker info` late meanwhile


@dataclass
class BootstrapContext:
    plan: LabPlan
    clients: ClientPool
    reporter: Reporter
    tokens: swarm.JoinTokens | None = None
    members: set[str] = field(default_factory=set)
    keeper: str = ""  # a manager of the lab's swarm: every swarm call goes to it
    managers: list[str] = field(default_factory=list)  # addresses of its managers, for joins

    @property
    def manager_client(self):
        return self.clients[self.keeper or self.plan.first_manager.name]


def find_or_init_swarm(ctx: BootstrapContext) -> None:
    """Keep the swarm the lab's managers hold; init one only when no manager holds any.

    Nodes in a swarm that is not the lab's (left over, or made by hand) leave it first.
    """
    plan = ctx.plan
    found = wait_until(lambda: repair.decide(repair.survey(plan, ctx.clients)),
                       timeout=plan.scaled(ELECTION_TIMEOUT), interval=1,
                       describe="the managers that hold the lab's swarm to agree on a leader",
                       hint=f"{hints.command('lab.status', lab=plan.name)} shows the managers; Raft needs a majority "
                            "of them up to elect a leader")
    ctx.keeper = found.keeper
    keeper = plan.node(found.keeper)
    if found.cluster_id:
        if not found.majority:
            ctx.reporter.warn(found.found)
        changed = swarm.ensure_tuning(ctx.manager_client, plan.spec.swarm)
        ctx.reporter.result(found.found if found.majority else f"the swarm of {', '.join(found.holders)} kept", changed)
        ctx.managers = [plan.node(name).address for name in found.managing]
    _leave_other_swarms(ctx, found.leave)
    if not found.cluster_id:
        changed = swarm.init(ctx.manager_client, keeper.address, plan.spec.swarm)
        ctx.reporter.result(f"swarm init on {keeper.name} ({keeper.address})", changed)
        ctx.managers = [keeper.address]
    ctx.tokens = swarm.tokens(ctx.manager_client)
    ctx.members = swarm.member_ids(ctx.manager_client)


def _leave_other_swarms(ctx: BootstrapContext, names: tuple[str, ...]) -> None:
    for name in names:
        swarm.leave(ctx.clients[name])
        ctx.reporter.result(f"{name} left a swarm that is not the lab's", True)


def fit_ingress_mtu(ctx: BootstrapContext) -> None:
    changed = swarm.ensure_ingress_mtu(ctx.manager_client, ctx.plan.mtu)
    ctx.reporter.result(f"ingress overlay MTU fits the lab network ({swarm.overlay_mtu(ctx.plan.mtu)} or less)", changed)


def _join(ctx: BootstrapContext, node: NodePlan) -> bool:
    assert ctx.tokens is not None
    return swarm.join(ctx.clients[node], node.name, node.address, ctx.managers,
                      ctx.tokens.for_role(node.role), ctx.members)


def join_managers(ctx: BootstrapContext) -> None:
    for node in [n for n in ctx.plan.nodes if n.is_manager and n.name != ctx.keeper]:
        ctx.reporter.result(f"{node.name} joined as manager", _join(ctx, node))


def join_workers(ctx: BootstrapContext) -> None:
    workers = [n for n in ctx.plan.nodes if not n.is_manager]
    joined = fan_out(workers, lambda node: _join(ctx, node), name=lambda node: node.name, what="joining workers")
    for name, changed in joined.items():
        ctx.reporter.result(f"{name} joined as worker", changed)


def remove_stale_entries(ctx: BootstrapContext) -> None:
    """Drop the entries that nodes which rejoined left behind; the live entry gets their labels.

    A rejoined node has a new node ID; its old entry stays listed, Down (and, for a
    manager, still a Raft member that counts against the majority) until removed.
    """
    live = repair.live_node_ids(ctx.plan, ctx.clients)
    entries = swarm_nodes(ctx.manager_client)
    for stale in repair.stale_entries(entries, live):
        if stale.labels and swarm.add_missing_labels(ctx.manager_client, live[stale.hostname], stale.labels):
            ctx.reporter.result(f"labels of {stale.hostname}'s stale entry kept: {stale.labels}", True)
        swarm.remove_entry(ctx.manager_client, stale.id, timeout=ctx.plan.scaled(60))
        ctx.reporter.result(f"stale entry of {stale.hostname} removed (a {stale.role}, {stale.state}, "
                            f"from before it rejoined)", True)


def apply_labels(ctx: BootstrapContext) -> None:
    ids = {hostname: n.id for hostname, n in live_entries(swarm_nodes(ctx.manager_client)).items()}
    for node in ctx.plan.nodes:
        if node.labels:
            changed = swarm.ensure_labels(ctx.manager_client, ids[node.name], dict(node.labels))
            ctx.reporter.result(f"labels on {node.name}: {node.labels}", changed)


def wait_ready(ctx: BootstrapContext) -> None:
    expected = {n.name for n in ctx.plan.nodes}

    def all_ready() -> bool:
        nodes = list(live_entries(swarm_nodes(ctx.manager_client)).values())
        seen = {n.hostname for n in nodes}
        late = [f"{n.hostname}={n.state}" for n in nodes if n.hostname in expected and n.state != "ready"]
        late += [f"{name}=absent" for name in sorted(expected - seen)]
        late += [f"{n.hostname}=unreachable" for n in nodes if n.role == "manager" and n.reachability != "reachable"]
        if late:
            raise NotYet(", ".join(late))
        return True

    wait_until(all_ready, timeout=ctx.plan.scaled(READY_TIMEOUT),
               describe="every node to be Ready (and every manager reachable)",
               hint=f"{hints.command('lab.status')} shows which node lags; {hints.command('lab.doctor')} checks the host")
    ctx.reporter.result(f"{len(expected)} nodes ready", False)


STEPS = (find_or_init_swarm, fit_ingress_mtu, join_managers, join_workers, remove_stale_entries, wait_ready,
         apply_labels)


def bootstrap(plan: LabPlan, clients: ClientPool, reporter: Reporter) -> None:
    """Form (or confirm) the swarm of ``plan``. Tokens stay in memory only."""
    ctx = BootstrapContext(plan, clients, reporter)
    with reporter.step("forming the swarm"):
        for step in STEPS:
            step(ctx)
