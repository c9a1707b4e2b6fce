"""One progress display for a class: a line per lab with its phases (machines, setup, swarm,
ready). Each lab.up reports through its own ``LabLine`` (a Reporter); a step's title says which
phase the lab is in. On a terminal the table redraws in place (rich's Live); elsewhere (a log,
a test) each change of phase is one line, so the output stays readable when piped."""

from __future__ import annotations

import sys
import threading
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from provision.progress import Reporter

PHASES = ("machines", "setup", "swarm", "ready")
# the first words of lab.up's steps (orchestrator/create.py), and the phase each one starts
STEP_PHASES = (("machines for lab", "machines"), ("host setup", "setup"), ("lab registry", "setup"),
               ("forming the swarm", "swarm"), ("demo images", "swarm"), ("door and snapshot", "ready"))


class ClassDisplay:
    def __init__(self, labs: list[str], hosts: dict[str, str], console: Console | None = None):
        self.console = console or Console(file=sys.stderr, highlight=False)
        self.rows = {lab: {"host": hosts.get(lab, "local"), "phase": "", "state": "waiting", "note": "",
                           "start": 0.0, "seconds": 0.0} for lab in labs}
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __enter__(self) -> "ClassDisplay":
        if self.console.is_terminal:
            self._live = Live(self._table(), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(*exc)

    def set(self, lab: str, *, phase: str | None = None, state: str | None = None, note: str | None = None) -> None:
        with self._lock:
            row = self.rows[lab]
            if state == "working" and not row["start"]:
                row["start"] = time.monotonic()
            changed = (phase and phase != row["phase"]) or (state and state != row["state"])
            row.update({k: v for k, v in (("phase", phase), ("state", state), ("note", note)) if v is not None})
            if row["start"]:
                row["seconds"] = time.monotonic() - row["start"]
            if self._live is not None:
                self._live.update(self._table())
            elif changed:
                tail = f" ({row['note']})" if row["note"] else ""
                self.console.print(f"{lab}: {row['phase'] or '-'} {row['state']}{tail}", markup=False, soft_wrap=True)

    def _table(self) -> Table:
        table = Table("lab", "host", *PHASES, "time", "note", box=None)
        for lab, row in self.rows.items():
            done = PHASES.index(row["phase"]) if row["phase"] in PHASES else -1
            if done < 0 and row["state"] == "failed":
                done = 0  # failed before its first step (the engine refused it, say)
            cells = []
            for i, phase in enumerate(PHASES):
                if i < done or (i == done and row["state"] == "ready"):
                    cells.append("[green]✓[/]")
                elif i == done:
                    cells.append("[red]✗[/]" if row["state"] == "failed" else "[cyan]…[/]")
                else:
                    cells.append("[dim]·[/]")
            table.add_row(lab, row["host"], *cells, f"{row['seconds']:.0f}s", row["note"])
        return table


class LabLine(Reporter):
    """A lab.up's reporter: moves the lab's line from phase to phase; warnings become its note
    (the last one), failures are kept for the summary."""

    def __init__(self, display: ClassDisplay, lab: str):
        self.display, self.lab = display, lab
        self.warnings: list[str] = []
        self.changes: list[str] = []

    def emit(self, kind: str, text: str) -> None:
        if kind == "step":
            for start, phase in STEP_PHASES:
                if text.startswith(start):
                    self.display.set(self.lab, phase=phase, state="working")
        elif kind == "warn":
            self.warnings.append(text)
        elif kind == "changed":
            self.changes.append(text)
