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

from provision.errors import SpecError
from provision.spec import model as specs
from provision.spec import validation

SPEC_FILE = "lab.yaml"
ENV_PREFIX = "INVOKE_LAB_"  # Invoke's environment variables for the ``lab`` section of its config
HINT = "fix lab.yaml or the command-line flags and run again"
# The sections of the spec that hold a mapping, each with what a user writes in it.
SECTIONS: dict[str, str] = {
    **{key: "keys: " + ", ".join(default) for key, default in specs.DEFAULTS.items()
       if isinstance(default, dict) and key not in ("labels", "hosts")},
    "labels": "node name: {key: value}", "hosts": "node name: {address, user, port, key}",
}


def load_spec(
    spec_file: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    default_name: str | None = None,
    sources: Mapping[str, str] | None = None,
) -> specs.LabSpec:
    """Merge the layers and build a LabSpec (not yet validated against a backend).

    ``default_name`` replaces the built-in lab name (the lab that ``lab.env`` chose for this
    shell); a name from any layer wins over it. ``sources`` names, by spec key, the
    environment variable that set a value of ``config`` (``env_sources``), so that a problem
    says where an invisible value came from.

    Raises:
        SpecError: listing every problem that can be seen without a backend, each once:
            sections that are not mappings, values of the wrong type, values out of range.
    """
    found: list[validation.Problem] = []
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    sources = {k: v for k, v in (sources or {}).items() if k != "spec" or spec_file is None}
    config = _section_mapping(config, "the lab section of Invoke's config", found)
    path = spec_file or config.pop("spec", None) or _default_spec_file()
    layers = [{"name": default_name} if default_name else {}, _read_layer(path, sources.get("spec")) if path else {},
              config, flags]
    layers = [_sections_checked(layer, found) for layer in layers]
    raw = copy.deepcopy(specs.DEFAULTS)
    for layer in layers:
        raw = merge(raw, layer)
    profile = specs.PROFILES.get(str(raw.get("profile")))
    if profile:  # the profile's timings go under every layer, so a value set anywhere wins
        raw = merge(copy.deepcopy(specs.DEFAULTS), profile)
        for layer in layers:
            raw = merge(raw, layer)
    spec, type_problems, stand_ins = _build(raw)
    found += type_problems
    found += [p for p in validation.checks(spec) if not stand_ins.intersection(p.keys)]
    if found:
        from_env = {key: var for key, var in sources.items() if _lookup(flags, key) is None}
        used = sorted({from_env[key] for p in found for key in p.keys if key in from_env})
        hint = f"fix lab.yaml, {', '.join(used)} or the command-line flags and run again" if used else HINT
        raise SpecError([_with_source(p, from_env) for p in sorted(found, key=_rank)], hint=hint)
    return spec


def env_sources(environ: Mapping[str, str]) -> dict[str, str]:
    """The spec keys that ``INVOKE_LAB_*`` variables in ``environ`` set, each mapped to its
    variable (``{"network.subnet": "INVOKE_LAB_NETWORK_SUBNET"}``), as Invoke names them."""
    found = {}
    for key, inner in settable_keys().items():
        for dotted in ([f"{key}.{k}" for k in inner] if isinstance(inner, dict) else [key]):
            variable = ENV_PREFIX + dotted.replace(".", "_").upper()
            if variable in environ:
                found[dotted] = variable
    return found


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


def _read_layer(path: str | Path, source: str | None) -> dict[str, Any]:
    try:
        return read_spec_file(path)
    except SpecError as err:
        if source is None:
            raise
        raise SpecError([f"{p} (from {source})" for p in err.problems], hint=err.hint) from err


def _section_mapping(value: Any, what: str, found: list[validation.Problem]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        found.append(validation.Problem(f"{what} must be a mapping of spec keys, not {value!r}"))
        return {}
    return dict(value)


def _sections_checked(layer: Mapping[str, Any], found: list[validation.Problem]) -> dict[str, Any]:
    """``layer`` without the sections that are not mappings, each of which is a problem
    (checked layer by layer, so a flag's section cannot hide a broken one in lab.yaml)."""
    out = {}
    for key, value in layer.items():
        if key in SECTIONS and value is None:
            continue  # `network:` with nothing under it
        if key in SECTIONS and not isinstance(value, Mapping):
            found.append(_not_a_mapping(key, value))
            continue
        out[key] = value
    return out


def _not_a_mapping(key: str, value: Any) -> validation.Problem:
    return validation.Problem(f"{key} must be a mapping ({SECTIONS[key]}), not {value!r}", (key,))


def _with_source(problem: validation.Problem, from_env: Mapping[str, str]) -> str:
    variables = sorted({from_env[key] for key in problem.keys if key in from_env})
    return f"{problem.text} (from {', '.join(variables)})" if variables else problem.text


def _rank(problem: validation.Problem) -> int:
    """Problems are listed in the order of the keys in the spec (lab.example.yaml's order)."""
    order = list(specs.DEFAULTS)
    top = problem.keys[0].partition(".")[0] if problem.keys else ""
    return order.index(top) if top in order else -1


def _lookup(layer: Mapping[str, Any], dotted: str) -> Any:
    value: Any = layer
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


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
    """Turn a merged mapping into a LabSpec (keys it lacks, as in a spec stored by an older
    swarmdeck, take their defaults); values are checked for type and shape only.

    Raises:
        SpecError: listing every value of the wrong type or shape.
    """
    spec, found, _ = _build(raw)
    if found:
        raise SpecError([p.text for p in found], hint=HINT)
    return spec


def _build(raw: Mapping[str, Any]) -> tuple[specs.LabSpec, list[validation.Problem], set[str]]:
    """The LabSpec of ``raw``, every type and shape problem, and the keys whose value was of the
    wrong type: the spec holds a stand-in for them (0, "") that value checks must not judge."""
    problems: list[validation.Problem] = []
    raw = merge(copy.deepcopy(specs.DEFAULTS), _sections_checked(raw, problems))
    unknown = sorted(set(raw) - set(specs.DEFAULTS) - {"spec"})
    problems += [validation.Problem(f"unknown spec key {key!r}") for key in unknown]
    for section in SECTIONS:
        if section in ("labels", "hosts"):
            continue
        extra = sorted(set(raw[section]) - set(specs.DEFAULTS[section]))
        problems += [validation.Problem(f"unknown key {key!r} in {section} ({SECTIONS[section]})", (section,))
                     for key in extra]
    get = _Getter(raw, problems)
    name, provider = get.text("name"), get.text("provider")
    explicit = raw.get("nodes") is not None
    managers, workers = (0, 0) if explicit else (get.count("managers", 1), get.count("workers", 0))
    nodes = _nodes(raw.get("nodes"), managers, workers, get.mapping("labels"), problems, get.stand_ins)
    network = specs.NetworkSpec(
        subnet=get.text("network.subnet"), mtu=get.integer("network.mtu")
    )
    registry = specs.RegistrySpec(
        enabled=get.boolean("registry.enabled"),
        port=get.integer("registry.port"),
        image=get.text("registry.image"),
        cache=get.boolean("registry.cache"),
        cache_port=get.integer("registry.cache_port"),
        cache_remote=get.text("registry.cache_remote"),
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
    limits = specs.LimitsSpec(memory=get.text("limits.memory"), cpus=get.number("limits.cpus"),
                              pids=get.integer("limits.pids"))
    spec = specs.LabSpec(name, provider, nodes, network, registry, swarm, profile, demos, hosts, vagrant, limits)
    return spec, problems, get.stand_ins


def to_mapping(spec: specs.LabSpec) -> dict[str, Any]:
    """The spec as plain data (for JSON state files and templates)."""
    return {
        "name": spec.name,
        "provider": spec.provider,
        "nodes": [_node_mapping(n) for n in spec.nodes],
        "network": {"subnet": spec.network.subnet, "mtu": spec.network.mtu},
        "registry": {"enabled": spec.registry.enabled, "port": spec.registry.port, "image": spec.registry.image,
                     "cache": spec.registry.cache, "cache_port": spec.registry.cache_port,
                     "cache_remote": spec.registry.cache_remote},
        "swarm": {
            "dispatcher_heartbeat": spec.swarm.dispatcher_heartbeat,
            "election_tick": spec.swarm.election_tick,
        },
        "profile": spec.profile,
        "demos": {"restart_delay": spec.demos.restart_delay, "health_interval": spec.demos.health_interval},
        "hosts": {name: {"address": h.address, "user": h.user, "port": h.port, "key": h.key}
                  for name, h in spec.hosts.items()},
        "vagrant": {"provider": spec.vagrant.provider, "box": spec.vagrant.box},
        "limits": {"memory": spec.limits.memory, "cpus": spec.limits.cpus, "pids": spec.limits.pids},
    }


def write_spec_json(spec: specs.LabSpec, path: Path) -> None:
    """Store ``spec`` as JSON at ``path`` (the records in a lab's state folder, through
    provision.state), whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(to_mapping(spec), indent=2) + "\n")
    partial.replace(path)


def read_spec_json(path: Path) -> specs.LabSpec | None:
    """The spec stored at ``path`` by ``write_spec_json``; None when there is none."""
    return from_mapping(json.loads(path.read_text())) if path.is_file() else None


def _hosts(raw: dict[str, dict], problems: list[validation.Problem]) -> dict[str, specs.HostSpec]:
    hosts = {}
    for name, entry in raw.items():
        unknown = sorted(set(entry) - {"address", "user", "port", "key"})
        problems += [validation.Problem(f"hosts.{name} has an unknown key {key!r} (use address, user, port, key)",
                                   ("hosts",)) for key in unknown]
        port = entry.get("port", 22)
        if isinstance(port, bool) or not isinstance(port, int):
            problems.append(validation.Problem(f"hosts.{name}.port must be a whole number, not {port!r}", ("hosts",)))
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


def _nodes(explicit, managers: int, workers: int, labels: dict[str, dict], problems: list[validation.Problem],
           stand_ins: set[str]) -> tuple[specs.NodeSpec, ...]:
    if explicit is None:
        names = [("manager", f"manager{i}") for i in range(1, managers + 1)]
        names += [("worker", f"worker{i}") for i in range(1, workers + 1)]
        entries = [{"name": n, "role": r} for r, n in names]
    elif isinstance(explicit, list):
        entries = explicit
    else:
        problems.append(validation.Problem(f"nodes must be a list of {{name, role, labels}}, not {explicit!r}", ("nodes",)))
        stand_ins.add("nodes")
        return ()
    nodes = []
    for entry in entries:
        if not isinstance(entry, Mapping) or "name" not in entry:
            problems.append(validation.Problem(f"node entry {entry!r} needs at least a name", ("nodes",)))
            stand_ins.add("nodes")
            continue
        name = str(entry["name"])
        own = entry.get("labels") or {}
        if not isinstance(own, Mapping):
            problems.append(validation.Problem(f"node {name!r} has labels {own!r}: labels are a mapping of "
                                          "{key: value}", ("nodes",)))
            own = {}
        node_labels = {str(k): str(v) for k, v in {**labels.get(name, {}), **own}.items()}
        slot = entry.get("slot")
        if slot is not None and (isinstance(slot, bool) or not isinstance(slot, int)):
            problems.append(validation.Problem(f"node {name!r} has slot {slot!r}: a slot is a whole number", ("nodes",)))
            slot = None
        nodes.append(specs.NodeSpec(name, str(entry.get("role", "worker")), node_labels, slot))
    if not stand_ins.intersection(validation.COUNT_KEYS):  # else the lab's real nodes are not known
        unknown = sorted(set(labels) - {n.name for n in nodes})
        problems += [validation.Problem(f"labels are given for {n!r}, which is not a node of this lab", ("labels",))
                     for n in unknown]
    return tuple(nodes)


class _Getter:
    """Read dotted keys from the raw mapping, recording type problems instead of raising; a
    key whose value is of the wrong type gets a stand-in value and is listed in ``stand_ins``."""

    def __init__(self, raw: Mapping[str, Any], problems: list[validation.Problem]):
        self.raw, self.problems = raw, problems
        self.stand_ins: set[str] = set()

    def _value(self, dotted: str):
        return _lookup(self.raw, dotted)

    def _wrong(self, dotted: str, text: str, stand_in):
        self.problems.append(validation.Problem(text, (dotted,)))
        self.stand_ins.add(dotted)
        return stand_in

    def _convert(self, dotted: str, kind, label: str, fallback):
        value = self._value(dotted)
        if isinstance(value, bool) and kind is not bool:
            value = None
        try:
            return kind(value)
        except (TypeError, ValueError):
            return self._wrong(dotted, f"{dotted} must be {label}, not {value!r}", fallback)

    def text(self, dotted: str) -> str:
        value = self._value(dotted)
        if value is None or isinstance(value, (dict, list)):
            return self._wrong(dotted, f"{dotted} must be a string, not {value!r}", "")
        return str(value)

    def integer(self, dotted: str) -> int:
        value = self._value(dotted)
        if isinstance(value, float) and not value.is_integer():
            return self._wrong(dotted, f"{dotted} must be a whole number, not {value!r}", 0)
        return self._convert(dotted, int, "a whole number", 0)

    def count(self, dotted: str, least: int) -> int:
        """A number of nodes: ``least`` or more is right, below 0 it cannot even be built."""
        value = self.integer(dotted)
        if value < 0:
            return self._wrong(dotted, f"{dotted} must be {least} or more, not {value}", 0)
        return value

    def number(self, dotted: str) -> float:
        return self._convert(dotted, float, "a number", 0.0)

    def boolean(self, dotted: str) -> bool:
        value = self._value(dotted)
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        if not isinstance(value, bool):
            return self._wrong(dotted, f"{dotted} must be true or false, not {value!r}", False)
        return value

    def mapping(self, dotted: str, what: str = "labels") -> dict[str, dict]:
        """Node names mapped to mappings (``labels``, ``hosts``)."""
        value = self._value(dotted) or {}
        if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
            return self._wrong(dotted, f"{dotted} must map node names to {{key: value}} {what}", {})
        return {str(k): dict(v) for k, v in value.items()}
