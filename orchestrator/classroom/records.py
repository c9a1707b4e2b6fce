"""A class's records in ``$SWARMDECK_HOME/classes/NAME/``: ``class.json`` (the template spec,
the students in order, each lab's host, door port and last change, the hosts inventory), ``secrets.json`` (each
student's secret, for the cards: 0600, never logged), ``snapshots/LAB/`` (each lab's node
state right after class.up, which class.reset restores: 0600 files in 0700 folders)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from provision.paths import ensure_private_dir, home
from provision.state import write_json


@dataclass
class Seat:
    id: str
    name: str
    lab: str
    host: str = "local"
    door_port: int = 0
    snapshot: bool = False  # class.up took the lab's snapshot
    changed: str = ""  # ISO time of the last class.up or class.reset of the lab


@dataclass
class ClassRecord:
    name: str
    spec: dict  # the lab template as plain data (provision.spec.load.to_mapping), name left as made
    address: str = ""  # where students reach the doors (the instructor machine's address)
    seats: list[Seat] = field(default_factory=list)
    hosts: list[dict] = field(default_factory=list)  # the hosts inventory (hosts.to_records); []: local only

    def seat(self, ident: str) -> Seat | None:
        return next((s for s in self.seats if ident in (s.id, s.lab)), None)


def door_address(record: ClassRecord, seat: Seat) -> str:
    """Where the student reaches the lab's door: its host's address, else the class's."""
    host = next((h for h in record.hosts if h["name"] == seat.host), None)
    return (host or {}).get("address") or record.address


def classes_dir() -> Path:
    return home() / "classes"


def class_dir(name: str) -> Path:
    return classes_dir() / name


def known_classes() -> list[str]:
    folder = classes_dir()
    return sorted(p.name for p in folder.iterdir() if (p / "class.json").is_file()) if folder.is_dir() else []


def read(name: str) -> ClassRecord | None:
    try:
        data = json.loads((class_dir(name) / "class.json").read_text())
    except (OSError, ValueError):
        return None
    seats = [Seat(**s) for s in data.pop("seats", [])]
    return ClassRecord(**data, seats=seats)


def write(record: ClassRecord) -> None:
    ensure_private_dir(class_dir(record.name))
    write_json(class_dir(record.name) / "class.json", asdict(record))


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def read_secrets(name: str) -> dict[str, str]:
    try:
        return json.loads((class_dir(name) / "secrets.json").read_text())
    except (OSError, ValueError):
        return {}


def write_secrets(name: str, secrets: dict[str, str]) -> None:
    ensure_private_dir(class_dir(name))
    write_json(class_dir(name) / "secrets.json", secrets)


def snapshot_dir(name: str, lab: str) -> Path:
    return ensure_private_dir(class_dir(name) / "snapshots" / lab)


def remove(name: str) -> bool:
    folder = class_dir(name)
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True
