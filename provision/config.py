"""Build a LabSpec from layers: defaults < lab.yaml < Invoke config < CLI flags.

Invoke config covers ``invoke.yaml`` and ``INVOKE_LAB_*`` environment
variables (the ``lab`` section); the spec file is ``--spec FILE``, else the
``lab.spec`` config value, else ``./lab.yaml`` when it exists.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping

import yaml

from provision import spec as specs
from provision.errors import SpecError

SPEC_FILE = "lab.yaml"
_SCALARS = ("name", "provider", "managers", "workers")


def load_spec(
    spec_file: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    default_name: str | None = None,
) -> specs.LabSpec:
    """Merge the layers and build a LabSpec (not yet validated against a backend).

    ``default_name`` replaces the built-in lab name (the lab that ``lab.env`` chose for this
    shell); a name from any layer wins over it.

    Raises:
        SpecError: listing every value of the wrong type or shape.
    """
    config = dict(config or {})
    path = spec_file or config.pop("spec", None) or _default_spec_file()
    layers = [{"name": default_name} if default_name else {}, read_spec_file(path) if path else {},
              {k: v for k, v in config.items() if k != "spec"},
              {k: v for k, v in (overrides or {}).items() if v is not None}]
    raw = copy.deepcopy(specs.DEFAULTS)
    for layer in layers:
        raw = merge(raw, layer)
    profile = specs.PROFILES.get(str(raw.get("profile")))
    if profile:  # the profile's timings go under every layer, so a value set anywhere wins
        raw = merge(copy.deepcopy(specs.DEFAULTS), profile)
        for layer in layers:
            raw = merge(raw, layer)
    return from_mapping(raw)


def settable_keys() -> dict[str, Any]:
    """Every spec key that holds a plain value, mapped to None, nested as in the spec, plus
    ``spec`` (the spec file): what Invoke's config must declare for INVOKE_LAB_* variables."""
    keys: dict[str, Any] = {"spec": None}
    for key, default in specs.DEFAULTS.items():
        if isinstance(default, dict) and key not in ("labels", "hosts"):
            keys[key] = {inner: None for inner in default}
        elif not isinstance(default, dict) and key != "nodes":
            keys[key] = None
    return keys


def read_spec_file(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as err:
        raise SpecError([f"spec file {path} does not exist"]) from err
    except yaml.YAMLError as err:
        raise SpecError([f"spec file {path} is not valid YAML: {err}"]) from err
    if not isinstance(data, dict):
        raise SpecError([f"spec file {path} must hold a mapping, not {type(data).__name__}"])
    return data


def merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``top`` into a copy of ``base`` (mappings merge, the rest replaces)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def from_mapping(raw: Mapping[str, Any]) -> specs.LabSpec:
    """Turn a merged mapping into a LabSpec, collecting every type problem (keys it lacks,
    as in a spec stored by an older swarmdeck, take their defaults)."""
    raw = merge(copy.deepcopy(specs.DEFAULTS), raw)
    problems: list[str] = []
    unknown = sorted(set(raw) - set(specs.DEFAULTS) - {"spec"})
    problems += [f"unknown spec key {key!r}" for key in unknown]
    get = _Getter(raw, problems)
    name, provider = get.text("name"), get.text("provider")
    explicit = raw.get("nodes") is not None
    managers, workers = (0, 0) if explicit else (get.integer("managers"), get.integer("workers"))
    nodes = _nodes(raw.get("nodes"), managers, workers, get.mapping("labels"), problems)
    network = specs.NetworkSpec(
        subnet=get.text("network.subnet"), mtu=get.integer("network.mtu")
    )
    registry = specs.RegistrySpec(
        enabled=get.boolean("registry.enabled"),
        port=get.integer("registry.port"),
        image=get.text("registry.image"),
    )
    swarm = specs.SwarmSpec(
        dispatcher_heartbeat=get.number("swarm.dispatcher_heartbeat"),
        election_tick=get.integer("swarm.election_tick"),
    )
    demos = specs.DemoSpec(
        restart_delay=get.number("demos.restart_delay"), health_interval=get.number("demos.health_interval"),
    )
    profile = get.text("profile")
    hosts = _hosts(get.mapping("hosts", "entries (address, user, port, key)"), problems)
    vagrant = specs.VagrantSpec(provider=get.text("vagrant.provider"), box=get.text("vagrant.box"))
    if problems:
        raise SpecError(problems, hint="fix lab.yaml or the command-line flags and run again")
    return specs.LabSpec(name, provider, nodes, network, registry, swarm, profile, demos, hosts, vagrant)


def to_mapping(spec: specs.LabSpec) -> dict[str, Any]:
    """The spec as plain data (for JSON state files and templates)."""
    return {
        "name": spec.name,
        "provider": spec.provider,
        "nodes": [_node_mapping(n) for n in spec.nodes],
        "network": {"subnet": spec.network.subnet, "mtu": spec.network.mtu},
        "registry": {"enabled": spec.registry.enabled, "port": spec.registry.port, "image": spec.registry.image},
        "swarm": {
            "dispatcher_heartbeat": spec.swarm.dispatcher_heartbeat,
            "election_tick": spec.swarm.election_tick,
        },
        "profile": spec.profile,
        "demos": {"restart_delay": spec.demos.restart_delay, "health_interval": spec.demos.health_interval},
        "hosts": {name: {"address": h.address, "user": h.user, "port": h.port, "key": h.key}
                  for name, h in spec.hosts.items()},
        "vagrant": {"provider": spec.vagrant.provider, "box": spec.vagrant.box},
    }


def write_spec_json(spec: specs.LabSpec, path: Path) -> None:
    """Store ``spec`` as JSON at ``path`` (the records in a lab's state folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_mapping(spec), indent=2) + "\n")


def read_spec_json(path: Path) -> specs.LabSpec | None:
    """The spec stored at ``path`` by ``write_spec_json``; None when there is none."""
    return from_mapping(json.loads(path.read_text())) if path.is_file() else None


def _hosts(raw: dict[str, dict], problems: list[str]) -> dict[str, specs.HostSpec]:
    hosts = {}
    for name, entry in raw.items():
        unknown = sorted(set(entry) - {"address", "user", "port", "key"})
        problems += [f"hosts.{name} has an unknown key {key!r} (use address, user, port, key)" for key in unknown]
        port = entry.get("port", 22)
        if isinstance(port, bool) or not isinstance(port, int):
            problems.append(f"hosts.{name}.port must be a whole number, not {port!r}")
            port = 22
        hosts[name] = specs.HostSpec(address=str(entry.get("address") or ""), user=str(entry.get("user") or "root"),
                                     port=port, key=str(entry.get("key") or ""))
    return hosts


def _node_mapping(node: specs.NodeSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": node.name, "role": node.role, "labels": dict(node.labels)}
    if node.slot is not None:
        entry["slot"] = node.slot
    return entry


def _default_spec_file() -> Path | None:
    path = Path.cwd() / SPEC_FILE
    return path if path.is_file() else None


def _nodes(explicit, managers, workers, labels, problems) -> tuple[specs.NodeSpec, ...]:
    if explicit is None:
        if managers < 0 or workers < 0:
            problems.append("managers and workers must be 0 or more")
            return ()
        names = [("manager", f"manager{i}") for i in range(1, managers + 1)]
        names += [("worker", f"worker{i}") for i in range(1, workers + 1)]
        entries = [{"name": n, "role": r} for r, n in names]
    elif isinstance(explicit, list):
        entries = explicit
    else:
        problems.append("nodes must be a list of {name, role, labels}")
        return ()
    nodes = []
    for entry in entries:
        if not isinstance(entry, Mapping) or "name" not in entry:
            problems.append(f"node entry {entry!r} needs at least a name")
            continue
        name = str(entry["name"])
        node_labels = {**labels.get(name, {}), **(entry.get("labels") or {})}
        node_labels = {str(k): str(v) for k, v in node_labels.items()}
        slot = entry.get("slot")
        if slot is not None and (isinstance(slot, bool) or not isinstance(slot, int)):
            problems.append(f"node {name!r} has slot {slot!r}: a slot is a whole number")
            slot = None
        nodes.append(specs.NodeSpec(name, str(entry.get("role", "worker")), node_labels, slot))
    unknown = sorted(set(labels) - {n.name for n in nodes})
    problems += [f"labels are given for {n!r}, which is not a node of this lab" for n in unknown]
    return tuple(nodes)


class _Getter:
    """Read dotted keys from the raw mapping, recording type problems instead of raising."""

    def __init__(self, raw: Mapping[str, Any], problems: list[str]):
        self.raw, self.problems = raw, problems

    def _value(self, dotted: str):
        value: Any = self.raw
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return value

    def _convert(self, dotted: str, kind, label: str, fallback):
        value = self._value(dotted)
        if isinstance(value, bool) and kind is not bool:
            value = None
        try:
            return kind(value)
        except (TypeError, ValueError):
            self.problems.append(f"{dotted} must be {label}, not {value!r}")
            return fallback

    def text(self, dotted: str) -> str:
        value = self._value(dotted)
        if value is None or isinstance(value, (dict, list)):
            self.problems.append(f"{dotted} must be a string, not {value!r}")
            return ""
        return str(value)

    def integer(self, dotted: str) -> int:
        value = self._value(dotted)
        if isinstance(value, float) and not value.is_integer():
            self.problems.append(f"{dotted} must be a whole number, not {value!r}")
            return 0
        return self._convert(dotted, int, "a whole number", 0)

    def number(self, dotted: str) -> float:
        return self._convert(dotted, float, "a number", 0.0)

    def boolean(self, dotted: str) -> bool:
        value = self._value(dotted)
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        if not isinstance(value, bool):
            self.problems.append(f"{dotted} must be true or false, not {value!r}")
            return False
        return value

    def mapping(self, dotted: str, what: str = "labels") -> dict[str, dict]:
        """Node names mapped to mappings (``labels``, ``hosts``)."""
        value = self._value(dotted) or {}
        if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
            self.problems.append(f"{dotted} must map node names to {{key: value}} {what}")
            return {}
        return {str(k): dict(v) for k, v in value.items()}
