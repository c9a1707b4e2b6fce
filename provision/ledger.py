"""What one run created, so that a failed run removes exactly that and nothing else.

A failed ``lab.up`` or ``lab.add`` must not remove a lab, a machine or a disk that
existed before it started (two concurrent runs used to delete each other's labs), so
each provider records here every resource at the moment it decides to create it: the
lab network, a container and its volume, the load balancer, a VM, its disks and its
DHCP reservation, a Vagrant machine, an adopted host; the run records its state folder
when it made it. On failure the entries are undone in reverse order: a container goes
before its volume and its network, the state folder (keys needed to release a host)
last.

Why a ledger and not a before/after inventory of the lab's labelled resources: the
provider that creates a thing knows exactly which thing it is and how to remove it (a
container with its own volume, a VM with its overlay disk, seed disk and reservation,
a Vagrant machine through ``vagrant destroy``), while an inventory would need a second
model of every backend (libvirt disks carry no labels, an adopted host has nothing to
list) and could not tell the order things must go in. Entries are recorded *before* the
creating call and every undo tolerates a missing resource, so a run interrupted in the
middle of a call still removes what that call made.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from provision.errors import Interrupted, redact
from provision.progress import Reporter


@dataclass(frozen=True)
class Entry:
    what: str  # "container lab-manager1": shown when it is removed
    undo: Callable[[], object]  # removes it; must not fail when it is already gone


class Ledger:
    """The resources one run created, in the order it created them (thread-safe:
    providers create nodes in parallel)."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._lock = threading.Lock()

    def record(self, what: str, undo: Callable[[], object]) -> None:
        """Note that this run is creating ``what``; ``undo`` removes it. A thing recorded
        twice (a retried creation) is undone once."""
        with self._lock:
            if all(entry.what != what for entry in self._entries):
                self._entries.append(Entry(what, undo))

    @property
    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)

    def roll_back(self, reporter: Reporter) -> list[str]:
        """Undo every entry, the last created first; an undo that fails is reported and the
        others still run. An entry recorded meanwhile (a node thread still finishing after
        Ctrl-C) is undone too, since entries are taken from the end one at a time.
        Returns what could not be removed."""
        left = []
        while True:
            with self._lock:
                if not self._entries:
                    return left
                entry = self._entries.pop()
            try:
                entry.undo()
            except Exception as err:  # noqa: BLE001 - one stuck resource must not keep the others
                reporter.warn(f"could not remove {entry.what}: {redact(str(err))}")
                left.append(entry.what)
                continue
            reporter.info(f"removed {entry.what}")


def roll_back(ledger: Ledger, reporter: Reporter, *, announce: str, resume: str, remove: str) -> None:
    """Roll ``ledger`` back after a failed run, saying so first (``announce``). A second
    Ctrl-C stops the rollback and names the commands that finish the work (``resume``,
    ``remove``: built with cli.command, so they name the command the user ran).

    Raises:
        Interrupted: on Ctrl-C while rolling back (exit code 130, no traceback).
    """
    if not ledger.entries:
        return  # this run created nothing: nothing to say or remove
    try:
        reporter.warn(announce)
        left = ledger.roll_back(reporter)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: run {resume} to resume or {remove} to remove what is left") from None
    if left:
        reporter.warn(f"left behind: {', '.join(left)}; {remove} removes what is left")
