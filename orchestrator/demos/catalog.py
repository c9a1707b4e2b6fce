"""Every demo by name, in the workshop's order (``demo.all`` runs them in this order: the gentle
ones first, then the failures (a planned leader change beside a killed leader), then the
security chapter, quorum last since it rebuilds the control plane)."""

from __future__ import annotations

from typing import Callable

from orchestrator.demos import (
    autolock,
    ca_rotate,
    constraints,
    drain,
    encrypted_overlay,
    failover,
    global_mode,
    handoff,
    leader,
    mesh,
    partition,
    quorum,
    rolling_update,
    scale,
    swarm_secrets,
)
from provision.errors import UsageError

WORKSHOP: dict[str, Callable] = {
    "scale": scale.run,
    "drain": drain.run,
    "constraints": constraints.run,
    "global": global_mode.run,
    "mesh": mesh.run,
    "rolling-update": rolling_update.run,
    "failover": failover.run,
    "leader": leader.run,
    "handoff": handoff.run,
    "partition": partition.run,
    "secrets": swarm_secrets.run,
    "encrypted-overlay": encrypted_overlay.run,
    "autolock": autolock.run,
    "ca-rotate": ca_rotate.run,
    "quorum": quorum.run,
}


def chosen(only: list[str] | None) -> list[tuple[str, Callable]]:
    """The demos to run, in workshop order: all, or those named in ``only``.

    Raises:
        UsageError: for a name that is no demo, listing the demos there are.
    """
    unknown = sorted(set(only or []) - set(WORKSHOP))
    if unknown:
        raise UsageError(f"unknown demo(s) {', '.join(unknown)}: choose from {', '.join(WORKSHOP)}")
    return [(name, run) for name, run in WORKSHOP.items() if not only or name in only]
