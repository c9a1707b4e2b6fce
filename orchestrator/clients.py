"""Docker SDK clients for a lab's node engines, made once and closed together."""

from __future__ import annotations

import threading

import docker

from provision.plan import LabPlan, NodePlan
from provision.remote.engine_clients import node_client


class ClientPool:
    """One TLS client per node of ``plan``, created on first use. ``timeout`` is right for
    container nodes; it is scaled to the pace of the lab's machines (see LabPlan)."""

    def __init__(self, plan: LabPlan, *, timeout: int = 30):
        self.plan, self.base_timeout, self.timeout = plan, timeout, int(plan.scaled(timeout))
        self._clients: dict[str, docker.DockerClient] = {}
        self._lock = threading.Lock()

    def rescale(self, plan: LabPlan) -> None:
        """Use ``plan``'s pace from now on (clients made so far are closed, made again on use)."""
        self.close()
        self.plan, self.timeout = plan, int(plan.scaled(self.base_timeout))

    def __getitem__(self, node: str | NodePlan) -> docker.DockerClient:
        name = node if isinstance(node, str) else node.name
        with self._lock:
            if name not in self._clients:
                self._clients[name] = node_client(self.plan.name, self.plan.node(name).address, timeout=self.timeout)
            return self._clients[name]

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def __enter__(self) -> "ClientPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
