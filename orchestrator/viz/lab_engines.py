"""A lab's node engines as the visualizer's feed asks them (orchestrator/viz/feed.py): over
mutual TLS, with the lab's own facts beside the swarm (its registry, entry point, the demo
running and the reports saved). Kept apart from feed.py, which the visualizer stand-in's
image carries without the rest of swarmdeck."""

from __future__ import annotations

from orchestrator.clients import ClientPool
from orchestrator.viz.feed import CLIENT_TIMEOUT, live_demo, reports
from provision import inventory, state
from provision.lab_services import entry_point as entrypoint
from provision.plan import LabPlan
from provision.remote import tls


class LabEngines:
    """The engines of ``plan``'s nodes, one TLS client each, managers first."""

    def __init__(self, plan: LabPlan):
        self.plan, self.lab = plan, plan.name
        self.nodes = [(n.name, n.is_manager) for n in plan.nodes]
        self.clients = ClientPool(plan, timeout=CLIENT_TIMEOUT)
        self.addresses = {n.name: f"{n.address}:{tls.ENGINE_PORT}" for n in plan.nodes}

    def facts(self) -> dict:
        return {"registry": self.plan.registry, "entry_point": entrypoint.entry_point(self.plan).to_json(),
                "demo": live_demo(self.lab), "reports": reports(self.lab), "lesson": state.read_lesson(self.lab)}

    def close(self) -> None:
        self.clients.close()


def of_lab(lab: str) -> LabEngines:
    """The engines of lab ``lab`` (an unknown lab is a LabError)."""
    _, plan = inventory.existing_lab(lab)
    return LabEngines(plan)
