import pytest

from provision import config, spec as specs
from provision.errors import SpecError


def load(**overrides):
    return config.load_spec(None, {}, overrides)


def test_defaults_are_three_managers_and_two_workers():
    spec = load()
    assert [n.name for n in spec.nodes] == ["manager1", "manager2", "manager3", "worker1", "worker2"]
    assert [n.role for n in spec.managers] == ["manager"] * 3
    assert spec.name == "swarmdeck" and spec.provider == "docker"
    assert spec.registry.enabled and spec.registry.port == 5000
    assert specs.validate(spec) == []


def test_validation_lists_every_problem_at_once():
    spec = load(name="Bad_Name", provider="virtualbox", managers=0, network={"subnet": "10.1.2.300/24"})
    with pytest.raises(SpecError) as caught:
        specs.validate(spec)
    problems = caught.value.problems
    assert len(problems) == 4
    text = caught.value.user_message()
    for fragment in ("lab name 'Bad_Name' is invalid", "unknown provider 'virtualbox'",
                     "at least one manager", "is not an IPv4 CIDR", "hint:"):
        assert fragment in text
    assert caught.value.exit_code == 2


def test_duplicate_node_names_are_refused():
    spec = load(nodes=[{"name": "a", "role": "manager"}, {"name": "a", "role": "worker"}])
    with pytest.raises(SpecError, match="'a' is used twice"):
        specs.validate(spec)


def test_overlapping_subnet_names_the_other_network():
    spec = load(network={"subnet": "172.17.5.0/24"})
    with pytest.raises(SpecError, match="overlaps network 'bridge'"):
        specs.validate(spec, taken_subnets={"bridge": "172.17.0.0/16", "other": "10.9.0.0/24"})


def test_subnet_too_small_for_the_nodes():
    with pytest.raises(SpecError, match="too small for 5 nodes"):
        specs.validate(load(network={"subnet": "10.1.0.0/29"}))


def test_even_managers_warn_with_raft_arithmetic():
    warnings = specs.validate(load(managers=2))
    assert len(warnings) == 1
    assert "majority (2 of 2)" in warnings[0] and "tolerates 0 manager loss" in warnings[0]
    assert specs.validate(load(managers=4))[0].count("tolerates 1") == 1


def test_wrong_types_are_problems_not_tracebacks():
    with pytest.raises(SpecError) as caught:
        load(managers="three", registry={"enabled": "maybe"}, swarm={"dispatcher_heartbeat": [1]})
    assert len(caught.value.problems) == 3


def test_unknown_keys_and_labels_for_unknown_nodes_are_reported():
    with pytest.raises(SpecError) as caught:
        config.from_mapping({**specs.DEFAULTS, "managerz": 3, "labels": {"nope": {"a": "b"}}})
    assert any("unknown spec key 'managerz'" in p for p in caught.value.problems)
    assert any("'nope', which is not a node" in p for p in caught.value.problems)


def test_layers_file_then_invoke_config_then_flags(tmp_path):
    spec_file = tmp_path / "lab.yaml"
    spec_file.write_text("name: fromfile\nworkers: 4\nlabels:\n  worker1: {zone: a}\nswarm: {dispatcher_heartbeat: 2}\n")
    spec = config.load_spec(spec_file, {"workers": 3, "swarm": {"dispatcher_heartbeat": 1}}, {"managers": 1})
    assert spec.name == "fromfile"
    assert len(spec.workers) == 3 and len(spec.managers) == 1
    assert spec.node("worker1").labels == {"zone": "a"}
    assert spec.swarm.dispatcher_heartbeat == 1.0


def test_the_tuned_profile_sets_timings_under_every_layer(tmp_path):
    tuned = config.load_spec(None, {}, {"profile": "tuned"})
    assert tuned.swarm.dispatcher_heartbeat == 0.5 and tuned.demos.restart_delay == 0.0
    assert tuned.demos.health_interval == 0.5 and specs.validate(tuned) == []
    spec_file = tmp_path / "lab.yaml"
    spec_file.write_text("profile: tuned\nswarm: {dispatcher_heartbeat: 1}\n")
    mixed = config.load_spec(spec_file, {}, {})
    assert mixed.swarm.dispatcher_heartbeat == 1.0 and mixed.demos.restart_delay == 0.0
    assert config.from_mapping(config.to_mapping(mixed)) == mixed
    assert config.load_spec(None, {}, {}).demos.restart_delay == 1.0


def test_an_election_tick_other_than_10_is_refused_with_the_reason():
    with pytest.raises(SpecError) as caught:
        specs.validate(config.load_spec(None, {}, {"swarm": {"election_tick": 3}, "profile": "fast"}))
    text = caught.value.user_message()
    assert "rejects swarm-raft-election-tick" in text and "unknown profile 'fast'" in text


def test_spec_file_errors_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        config.load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(SpecError, match="must hold a mapping"):
        config.load_spec(bad)


def test_shipped_example_spec_is_valid():
    from provision.paths import REPO
    spec = config.load_spec(REPO / "lab.example.yaml")
    assert specs.validate(spec) == []


def test_round_trip_through_plain_data():
    spec = load(labels={"worker2": {"mem": "max"}})
    assert config.from_mapping(config.to_mapping(spec)) == spec


def test_node_addresses_are_static_and_skip_the_gateway():
    assert specs.node_address("10.199.3.0/24", 0) == "10.199.3.10"
    assert specs.node_address("10.199.3.0/24", 4) == "10.199.3.14"


def test_unknown_node_lookup_names_the_nodes():
    with pytest.raises(SpecError, match="manager1, manager2"):
        load(managers=2, workers=0).node("worker9")
