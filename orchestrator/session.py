"""An open lab: its provider, plan, engine clients and a manager that answers."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import docker

from orchestrator.clients import ClientPool
from orchestrator.views import reachable_manager
from provision import hints, inventory
from provision.errors import SwarmError
from provision.plan import LabPlan


@dataclass
class LabSession:
    provider: object
    plan: LabPlan
    clients: ClientPool
    manager: docker.DockerClient

    def refresh_manager(self) -> docker.DockerClient:
        """Pick a manager again (after the one in use was demoted, stopped or killed)."""
        self.manager = require_manager(self.plan, self.clients, self.provider)
        return self.manager


def require_manager(plan: LabPlan, clients: ClientPool, provider) -> docker.DockerClient:
    manager = reachable_manager(plan, clients, provider.list(plan.name))
    if manager is None:
        raise SwarmError(
            f"no manager of lab {plan.name!r} answers as a swarm manager",
            hint=f"{hints.command('lab.status', lab=plan.name)} shows the managers; with too few of them Raft has lost its majority",
        )
    return manager


@contextmanager
def open_lab(name: str, *, timeout: int = 30) -> Iterator[LabSession]:
    """The lab called ``name`` with a reachable manager; clients are closed afterwards."""
    provider, plan = inventory.existing_lab(name)
    with ClientPool(plan, timeout=timeout) as clients:
        yield LabSession(provider, plan, clients, require_manager(plan, clients, provider))
