"""What the visualizer shows: one JSON snapshot of a swarm, kept fresh.

``snapshot`` turns what a manager reports (nodes, services, tasks) into plain data;
``remember_down_nodes`` adds to a node that is not ready the tasks last seen on it and since
when it is down (Swarm forgets them once it runs them elsewhere, a class wants to see what the
dead node ran); ``SwarmFeed`` keeps asking a manager, moves to another one when it stops answering,
says when none answers or the swarm has no leader (quorum lost), wakes up at once on
Docker events (node and service changes), and polls as a fallback, since task changes
have no swarm-wide event.

A feed asks the engines it is given: a lab's nodes over mutual TLS
(``lab_engines.LabEngines``, the visualizer on the machine running swarmdeck), or the one
engine whose socket a container was given (``LocalEngine``: the dockersamples/visualizer
stand-in, provision/images/tutorial.py). This module needs only the docker SDK and the
standard library, so that the stand-in's image carries it without the rest of swarmdeck.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol

import docker
import docker.errors
import requests

from provision.paths import REPORT_NAME, lab_dir

POLL_SECONDS = 0.5
CLIENT_TIMEOUT = 2  # seconds: a dead manager is given up quickly
DOCKER_SOCKET = "/var/run/docker.sock"
API_VERSION = "1.41"  # the node engines' (Debian's 20.10) and every newer one's; named, so no call at start
LIVE_FILE = "live.json"


def colour(service: str) -> str:
    """A stable, distinct-enough colour per service name (hue from a hash)."""
    hue = int(hashlib.sha256(service.encode()).hexdigest()[:4], 16) % 360
    return f"hsl({hue}, 65%, 42%)"


def node_view(attrs: dict, engine_addresses: dict[str, str]) -> dict:
    spec, status = attrs.get("Spec") or {}, attrs.get("Status") or {}
    manager = attrs.get("ManagerStatus") or {}
    hostname = (attrs.get("Description") or {}).get("Hostname", "")
    role = "leader" if manager.get("Leader") else spec.get("Role", "worker")
    return {
        "id": attrs.get("ID", ""), "hostname": hostname, "role": role,
        "reachability": manager.get("Reachability", ""), "availability": spec.get("Availability", ""),
        "state": status.get("State", "unknown"), "labels": dict(spec.get("Labels") or {}),
        "engine": engine_addresses.get(hostname, status.get("Addr", "")),
    }


def task_view(task: dict, service: str, hostnames: dict[str, str]) -> dict:
    image = task["Spec"]["ContainerSpec"]["Image"].split("@")[0]
    return {
        "id": task["ID"], "service": service, "slot": task.get("Slot"),
        "node": hostnames.get(task.get("NodeID", ""), ""), "state": task["Status"]["State"],
        "desired": task["DesiredState"], "image": image,
        "version": image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest",
        "colour": colour(service),
    }


def shown(task: dict) -> bool:
    """Tasks meant to run (a dead node's tasks keep state "running" until Swarm gives up on
    them, but their desired state turns to shutdown: those are not shown)."""
    return task["DesiredState"] in ("running", "ready", "accepted")


def snapshot(manager: docker.DockerClient, engine_addresses: dict[str, str]) -> dict:
    """Nodes, services and the tasks meant to run, as a manager reports them now."""
    nodes = [node_view(n.attrs, engine_addresses) for n in manager.nodes.list()]
    hostnames = {n["id"]: n["hostname"] for n in nodes}
    services, tasks = [], []
    for service in manager.services.list():
        mode = service.attrs["Spec"].get("Mode") or {}
        replicas = (mode.get("Replicated") or {}).get("Replicas")
        services.append({"name": service.name, "mode": "replicated" if "Replicated" in mode else "global",
                         "replicas": replicas, "colour": colour(service.name)})
        tasks += [task_view(t, service.name, hostnames) for t in service.tasks() if shown(t)]
    nodes.sort(key=lambda n: (n["role"] == "worker", n["hostname"]))
    tasks.sort(key=lambda t: (t["service"], t["slot"] or 0, t["node"]))
    services.sort(key=lambda s: s["name"])
    return {"nodes": nodes, "services": services, "tasks": tasks}


def remember_down_nodes(snap: dict, memory: dict[str, dict], now: float) -> dict:
    """Add ``last_tasks`` and ``down_since`` to each node of ``snap``.

    ``memory`` (hostname -> {"tasks", "down_since"}, kept by the caller between snapshots)
    holds the tasks seen on each node while it was ready. A node that is not ready gets
    those as ``last_tasks`` (the ones still shown on it left out) and ``down_since``, the
    time (seconds since the epoch) it was first seen not ready; a ready node gets an empty
    list and None, and its memory is renewed. Stable from one poll to the next, so that an
    unchanged swarm makes no new snapshot.
    """
    for node in snap["nodes"]:
        host = node["hostname"]
        here = [t for t in snap["tasks"] if t["node"] == host]
        if node["state"] == "ready":
            memory[host] = {"tasks": here, "down_since": None}
            node["last_tasks"], node["down_since"] = [], None
            continue
        seen = memory.setdefault(host, {"tasks": [], "down_since": None})
        if seen["down_since"] is None:
            seen["down_since"] = round(now, 1)
        shown_ids = {t["id"] for t in here}
        node["last_tasks"] = [t for t in seen["tasks"] if t["id"] not in shown_ids]
        node["down_since"] = seen["down_since"]
    return snap


def reports(lab: str) -> list[dict]:
    """The lab's saved demo reports, newest first, with their verdicts and plot names."""
    folder = lab_dir(lab) / "reports"
    found = []
    for path in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        if not re.fullmatch(REPORT_NAME, path.stem):
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        found.append({"name": path.stem, "demo": data.get("demo"), "verdict": data.get("verdict"),
                      "started_at": data.get("started_at"),
                      "plot": f"/reports/{path.stem}.png" if path.with_suffix(".png").exists() else None})
    return found


def live_demo(lab: str) -> dict | None:
    path = lab_dir(lab) / "reports" / LIVE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Engines(Protocol):
    """Where a feed asks for its snapshots."""

    lab: str  # what the page is titled with
    nodes: list[tuple[str, bool]]  # (name, is a manager) of each engine that may be asked
    clients: Mapping[str, docker.DockerClient]  # by name
    addresses: dict[str, str]  # hostname -> the engine address shown on its node

    def facts(self) -> dict:
        """``registry``, ``entry_point``, ``demo`` and ``reports`` of the page."""

    def close(self) -> None: ...


class LocalEngine:
    """The one engine whose socket this process was given: the visualizer stand-in
    (dockersamples/visualizer) in a container on a manager, run with
    ``-v /var/run/docker.sock:/var/run/docker.sock`` as the tutorials do. There is no lab
    around it: no registry, entry point, demo or report to show."""

    def __init__(self, socket: str = DOCKER_SOCKET):
        client = docker.DockerClient(base_url=f"unix://{socket}", version=API_VERSION, timeout=CLIENT_TIMEOUT)
        try:
            name = client.info()["Name"]
        except (docker.errors.DockerException, requests.RequestException, OSError):
            name = "this engine"  # not answering yet: the feed says so
        self.lab, self.nodes = f"swarm of {name}", [(name, True)]
        self.clients, self.addresses = {name: client}, {}

    def facts(self) -> dict:
        return {"registry": None, "entry_point": None, "demo": None, "reports": []}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@dataclass
class SwarmFeed:
    """The swarm's latest snapshot, refreshed in a thread; ``wait_newer`` for streams."""

    engines: Engines
    poll_seconds: float = POLL_SECONDS
    version: int = 0
    state: dict = field(default_factory=dict)
    _manager: str | None = None
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.clients = self.engines.clients
        self._last_good: dict = {"nodes": [], "services": [], "tasks": []}
        self._seen_on_nodes: dict[str, dict] = {}  # remember_down_nodes's memory

    # -- the loop ----------------------------------------------------------------------------

    def start(self) -> "SwarmFeed":
        threading.Thread(target=self._poll, name="viz-poll", daemon=True).start()
        threading.Thread(target=self._listen, name="viz-events", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.engines.close()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _listen(self) -> None:
        """Docker events of the manager in use (node and service changes) wake the poller."""
        while not self._stop.is_set():
            name = self._manager
            if name is None:
                time.sleep(1)
                continue
            try:
                events = self.clients[name].events(decode=True, filters={"type": ["node", "service"]})
                for _ in events:
                    self._wake.set()
                    if self._stop.is_set() or self._manager != name:
                        break
            except (docker.errors.DockerException, requests.RequestException, OSError):
                time.sleep(1)  # that manager went away: the poller picks another

    # -- one refresh -------------------------------------------------------------------------

    def refresh(self) -> dict:
        swarm, manager, problem = self._ask_managers()
        if swarm is not None:
            self._last_good = remember_down_nodes(swarm, self._seen_on_nodes, time.time())
            status, message = "ok", ""
        else:
            status, message = problem
        state = {"lab": self.engines.lab, "status": status, "message": message, "manager": manager,
                 **self.engines.facts(), **self._last_good, "stale": swarm is None}
        self._publish(state)
        return state

    def _ask_managers(self) -> tuple[dict | None, str | None, tuple[str, str]]:
        """(snapshot, manager used, (status, message) when none gave one)."""
        leaderless: list[str] = []
        for name in self._candidates():
            try:
                found = snapshot(self.clients[name], self.engines.addresses)
            except docker.errors.APIError as err:
                if "leader" in str(err.explanation or err).lower():
                    leaderless.append(name)
                continue
            except (docker.errors.DockerException, requests.RequestException, OSError):
                continue
            self._manager = name
            return found, name, ("ok", "")
        self._manager = None
        return None, None, no_manager_problem(leaderless, self._known_managers())

    def _known_managers(self) -> list[str]:
        """The managers as last seen (a promoted worker counts), else the engines' own list."""
        seen = [n["hostname"] for n in self._last_good["nodes"] if n["role"] in ("leader", "manager")]
        return seen or [name for name, manager in self.engines.nodes if manager]

    def _candidates(self) -> list[str]:
        """The manager in use first, then the lab's managers, then the other nodes (a
        promoted worker is a manager too)."""
        names = [name for name, _ in sorted(self.engines.nodes, key=lambda node: not node[1])]
        if self._manager in names:
            names.remove(self._manager)
            names.insert(0, self._manager)
        return names

    def _publish(self, state: dict) -> None:
        with self._changed:
            if state != self.state:
                self.state = state
                self.version += 1
                self._changed.notify_all()

    def wait_newer(self, version: int, timeout: float) -> tuple[int, dict]:
        """Block until a snapshot newer than ``version`` exists (or ``timeout``)."""
        with self._changed:
            self._changed.wait_for(lambda: self.version > version or self._stop.is_set(), timeout=timeout)
            return self.version, self.state


def no_manager_problem(leaderless: list[str], managers: list[str]) -> tuple[str, str]:
    """(status, message) when no manager gave a snapshot; ``leaderless``: managers that
    answered but have no leader."""
    total, majority = len(managers), len(managers) // 2 + 1
    if len(leaderless) >= majority:
        return "electing", (f"{len(leaderless)} of {total} managers answer but there is no leader yet: Raft is "
                            f"electing one (it waits 10-20 s after losing the old leader). Tasks keep running.")
    if leaderless:
        return "no-quorum", (f"only {', '.join(leaderless)} of {total} managers answer: Raft needs a majority "
                             f"({majority} of {total}) to elect a leader, so the swarm cannot be changed until "
                             "enough managers are back. Running tasks keep serving.")
    return "unreachable", "No manager of the lab answers. Showing the last state seen."


def report_file(lab: str, name: str) -> Path | None:
    """A report's file (``NAME.png`` or ``NAME.json``) when ``name`` is one; never a path outside."""
    stem, _, suffix = name.rpartition(".")
    if suffix not in ("png", "json") or not re.fullmatch(REPORT_NAME, stem):
        return None
    path = lab_dir(lab) / "reports" / name
    return path if path.is_file() else None

