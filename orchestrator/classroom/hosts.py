"""A class's hosts inventory: the Docker engines its labs may live on, each with a capacity.

Without an inventory a class lives on the local engine. With one (``class.up --hosts FILE``)::

    hosts:
      - name: local              # this machine's engine (leave it out to use the others only)
        capacity: 12g            # memory the class may use there (default: its memory less 2 GiB)
      - name: rack2
        docker_host: ssh://swarmdeck@10.0.0.12   # reached over SSH only; its key in ~/.ssh/known_hosts
        capacity: 16g            # default: what its engine reports (docker info) less 2 GiB
        address: 10.0.0.12       # where students reach its labs' doors (default: docker_host's host)

A remote engine is the docker SDK's ``ssh://`` transport: it checks the host's key against
``~/.ssh/known_hosts`` and refuses an unknown one (provision/remote/engine_clients.py). Its labs'
nodes are then reached through that host, never by a route to their network (reach.py)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from urllib.parse import urlsplit

import docker.errors
import yaml

from orchestrator.classroom import placement
from provision.errors import LabError, UsageError
from provision.remote.engine_clients import engine_client
from provision.spec.model import memory_bytes

LOCAL = "local"
KEYS = {"name", "docker_host", "capacity", "address"}
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")


def read(path: str) -> list[placement.ClassHost]:
    """The inventory in ``path``, checked; capacities of remote hosts left out are asked of them.

    Raises:
        UsageError: naming every problem of the file.
        LabError: when a remote engine does not answer (to size it).
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise UsageError(f"cannot read the hosts inventory {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise UsageError(f"the hosts inventory {path} is not YAML: {err}") from err
    entries = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"the hosts inventory {path} needs a list under 'hosts:'",
                          hint="see orchestrator/classroom/hosts.py or the README's class section for an example")
    problems: list[str] = []
    parsed = [_entry(i, entry, problems) for i, entry in enumerate(entries, 1)]
    names = [h["name"] for h in parsed if h]
    problems += [f"host {n!r} is named twice" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise UsageError(f"the hosts inventory {path} has {len(problems)} problem(s): " + "; ".join(problems))
    return [_host(h) for h in parsed if h]


def _entry(index: int, entry: object, problems: list[str]) -> dict | None:
    if not isinstance(entry, dict):
        problems.append(f"entry {index} is not a mapping")
        return None
    where = f"host {entry.get('name', index)!r}"
    unknown = sorted(set(entry) - KEYS)
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    name = str(entry.get("name", ""))
    if not NAME.fullmatch(name):
        problems.append(f"{where}: name must be lowercase letters, digits and '-' (at most 31)")
    url = entry.get("docker_host")
    if name == LOCAL and url:
        problems.append(f"{where}: 'local' is this machine's engine and takes no docker_host")
    if name != LOCAL:
        if not isinstance(url, str) or urlsplit(url).scheme != "ssh" or not urlsplit(url).hostname:
            problems.append(f"{where}: docker_host must be ssh://USER@HOST (a remote engine reached over SSH)")
    capacity = entry.get("capacity")
    if capacity is not None and not memory_bytes(str(capacity)):
        problems.append(f"{where}: capacity {capacity!r} is not a size like 16g or 8192m")
    return {**entry, "name": name}


def _host(entry: dict) -> placement.ClassHost:
    capacity = entry.get("capacity")
    mb = memory_bytes(str(capacity)) // placement.MiB if capacity is not None else None
    if entry["name"] == LOCAL:
        return dataclasses.replace(placement.local_host(mb), address=str(entry.get("address") or ""))
    url = entry["docker_host"]
    if mb is None:
        mb = max(0, engine_memory_mb({"DOCKER_HOST": url}) - placement.HOST_RESERVE_MB)
    return placement.ClassHost(entry["name"], {"DOCKER_HOST": url}, mb,
                               str(entry.get("address") or urlsplit(url).hostname))


def engine_memory_mb(settings: dict[str, str]) -> int:
    """The memory a remote engine reports (``docker info``'s MemTotal), in MiB."""
    client = engine_client(settings, timeout=30)
    try:
        return int(client.info().get("MemTotal", 0)) // placement.MiB
    except docker.errors.DockerException as err:
        raise LabError(f"the engine at {settings['DOCKER_HOST']} did not say its memory: {err}",
                       hint="give the host a capacity in the inventory") from err
    finally:
        client.close()


def to_records(hosts: list[placement.ClassHost]) -> list[dict]:
    return [{"name": h.name, "engine": h.engine, "capacity_mb": h.capacity_mb, "address": h.address} for h in hosts]


def from_records(entries: list[dict]) -> list[placement.ClassHost]:
    return [placement.ClassHost(e["name"], e.get("engine"), int(e["capacity_mb"]), e.get("address", ""))
            for e in entries]
