"""Human-readable renderings of lab views."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from orchestrator.inspect import LabStatus


def status_table(status: LabStatus) -> str:
    table = Table(title=f"lab {status.name} ({status.provider})", title_justify="left")
    for column in ("node", "role", "address", "state", "availability", "leader", "machine"):
        table.add_column(column)
    for node in status.nodes:
        table.add_row(node.name, node.role, node.address, node.state, node.availability or "-",
                      "yes" if node.leader else "", node.machine)
    console = Console(width=100, record=True, file=open("/dev/null", "w"), color_system=None)
    console.print(table)
    footer = f"registry: {status.registry or 'none'}"
    if not status.swarm:
        footer += "\nno manager answers: the swarm is not formed or has lost its managers"
    return console.export_text().rstrip() + "\n" + footer
