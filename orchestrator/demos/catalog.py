"""Every demo by name, in the workshop's order (``demo.all`` runs them in this order: the gentle
ones first, then the failures, quorum last since it rebuilds the control plane)."""

from __future__ import annotations

from typing import Callable

from orchestrator.demos import (
    constraints,
    drain,
    failover,
    global_mode,
    leader,
    mesh,
    partition,
    quorum,
    rolling_update,
    scale,
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
    "partition": partition.run,
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
