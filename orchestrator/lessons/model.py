"""A lesson as data: ``templates/lessons/NAME.yaml``, loaded and validated.

A lesson file holds its ``title``, the tutorial it replays (``source``), ``notes`` (what the
lab changes, what cannot run offline), ``files`` (a build context written to the folder the
steps run in), ``cleanup`` (what it makes, removed before it starts and after it ends, so a
lesson runs again on the same lab) and its ``steps``. A step is a shell command (``run``,
a Jinja template: see runner.context) run through the real docker CLI pointed at a node
(``node``, default the first manager, as `lab.env` does) or, with ``ssh``, run on nodes
themselves; ``explain`` says in one line what it shows, ``corrected`` what the tutorial wrote
wrong, and ``check`` what must then hold (checks.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestrator.lessons import checks
from provision.errors import LabError
from provision.paths import TEMPLATES

FOLDER = TEMPLATES / "lessons"
LESSON_KEYS = {"title", "source", "summary", "notes", "files", "cleanup", "steps"}
STEP_KEYS = {"run", "explain", "corrected", "node", "ssh", "exit", "check", "timeout"}
CLEANUP_KEYS = {"services", "stacks", "containers", "networks", "node_labels", "nodes_active"}
SSH_TARGETS = ("managers", "workers", "all")


class LessonError(LabError):
    """A lesson file that is not valid."""


@dataclass(frozen=True)
class Check:
    kind: str
    args: dict


@dataclass(frozen=True)
class Step:
    run: str
    explain: str
    corrected: str | None = None
    on: str | None = None  # ``node:``, the node the docker CLI talks to (default: the first manager)
    ssh: str | None = None  # run on this node (or managers | workers | all) over SSH instead
    exit: int = 0  # the exit code the command must end with
    checks: tuple[Check, ...] = ()
    timeout: float = 120.0  # how long the checks may take to hold


@dataclass(frozen=True)
class Cleanup:
    services: tuple[str, ...] = ()
    stacks: tuple[str, ...] = ()
    containers: dict = field(default_factory=dict)  # node -> container names
    networks: tuple[str, ...] = ()
    node_labels: dict = field(default_factory=dict)  # node -> label keys
    nodes_active: bool = False  # every node back to availability active


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    source: str
    summary: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()
    files: dict = field(default_factory=dict)
    cleanup: Cleanup = Cleanup()


def names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def load(name: str) -> Lesson:
    path = FOLDER / f"{name}.yaml"
    if not path.is_file():
        raise LessonError(f"no lesson {name!r}", hint=f"lessons: {', '.join(names())} (swarmdeck lesson.ls)")
    return parse(name, path.read_text())


def load_all() -> list[Lesson]:
    return [load(name) for name in names()]


def parse(name: str, text: str) -> Lesson:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise LessonError(f"lesson {name}: the file does not parse: {err}") from err
    where = f"lesson {name}"
    _mapping(data, where)
    _keys(data, LESSON_KEYS, {"title", "source", "summary", "steps"}, where)
    steps = data["steps"]
    if not isinstance(steps, list) or not steps:
        raise LessonError(f"{where}: `steps` must be a non-empty list")
    return Lesson(
        name=name, title=_text(data, "title", where), source=_text(data, "source", where),
        summary=_text(data, "summary", where),
        steps=tuple(_step(step, f"{where} step {i}") for i, step in enumerate(steps, 1)),
        notes=tuple(_texts(data.get("notes", []), f"{where} notes")),
        files={str(k): str(v) for k, v in _mapping(data.get("files", {}), f"{where} files").items()},
        cleanup=_cleanup(data.get("cleanup", {}), f"{where} cleanup"),
    )


def _step(data, where: str) -> Step:
    _mapping(data, where)
    _keys(data, STEP_KEYS, {"run", "explain"}, where)
    if "node" in data and "ssh" in data:
        raise LessonError(f"{where}: `node` (the docker CLI's node) and `ssh` (run on nodes) exclude each other")
    ssh = data.get("ssh")
    if ssh is not None and not isinstance(ssh, str):
        raise LessonError(f"{where}: `ssh` is a node's name or one of {', '.join(SSH_TARGETS)}")
    found = data.get("check", [])
    if not isinstance(found, list):
        raise LessonError(f"{where}: `check` must be a list of checks")
    return Step(run=_text(data, "run", where), explain=_text(data, "explain", where),
                corrected=data.get("corrected"), on=data.get("node"), ssh=ssh, exit=int(data.get("exit", 0)),
                checks=tuple(_check(c, f"{where} check {i}") for i, c in enumerate(found, 1)),
                timeout=float(data.get("timeout", 120)))


def _check(data, where: str) -> Check:
    if not isinstance(data, dict) or len(data) != 1:
        raise LessonError(f"{where}: a check is one mapping `KIND: {{ARGS}}` (kinds: {', '.join(checks.KINDS)})")
    (kind, args), = data.items()
    if kind not in checks.KINDS:
        raise LessonError(f"{where}: unknown check {kind!r}", hint=f"checks: {', '.join(checks.KINDS)}")
    args = args if args is not None else {}
    _mapping(args, f"{where} ({kind})")
    required, optional = checks.KINDS[kind].required, checks.KINDS[kind].optional
    _keys(args, set(required) | set(optional), set(required), f"{where} ({kind})")
    return Check(kind, dict(args))


def _cleanup(data, where: str) -> Cleanup:
    _mapping(data, where)
    _keys(data, CLEANUP_KEYS, set(), where)
    return Cleanup(services=tuple(_texts(data.get("services", []), where)),
                   stacks=tuple(_texts(data.get("stacks", []), where)),
                   containers={k: tuple(_texts(v, where)) for k, v in _mapping(data.get("containers", {}), where).items()},
                   networks=tuple(_texts(data.get("networks", []), where)),
                   node_labels={k: tuple(_texts(v, where)) for k, v in _mapping(data.get("node_labels", {}), where).items()},
                   nodes_active=bool(data.get("nodes_active", False)))


def _mapping(data, where: str) -> dict:
    if not isinstance(data, dict):
        raise LessonError(f"{where}: expected a mapping, found {type(data).__name__}")
    return data


def _keys(data: dict, allowed: set[str], required: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise LessonError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}",
                          hint=f"allowed: {', '.join(sorted(allowed))}")
    missing = sorted(required - set(data))
    if missing:
        raise LessonError(f"{where}: missing {', '.join(missing)}")


def _text(data: dict, key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise LessonError(f"{where}: `{key}` must be non-empty text")
    return value.strip()


def _texts(values, where: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise LessonError(f"{where}: expected a list of names")
    return values


def path_of(name: str) -> Path:
    return FOLDER / f"{name}.yaml"
