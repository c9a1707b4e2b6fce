import pytest

from provision.errors import NodeNotFound, SpecError
from provision.spec import load as spec_load
from provision.spec import model as specs
from provision.spec import validation


def load(**overrides):
    return spec_load.load_spec(None, {}, overrides)


def test_defaults_are_three_managers_and_two_workers():
    spec = load()
    assert [n.name for n in spec.nodes] == ["manager1", "manager2", "manager3", "worker1", "worker2"]
    assert [n.role for n in spec.managers] == ["manager"] * 3
    assert spec.name == "swarmdeck" and spec.provider == "docker"
    assert spec.registry.enabled and spec.registry.port == 5000
    assert validation.validate(spec) == []


def test_validation_lists_every_problem_at_once():
    with pytest.raises(SpecError) as caught:
        load(name="Bad_Name", provider="virtualbox", managers=0, network={"subnet": "10.1.2.300/24"})
    problems = caught.value.problems
    assert len(problems) == 4
    text = caught.value.user_message()
    for fragment in ("lab name 'Bad_Name' is invalid", "unknown provider 'virtualbox'",
                     "at least one manager", "is not an IPv4 CIDR", "hint:"):
        assert fragment in text
    assert caught.value.exit_code == 2


def test_duplicate_node_names_are_refused():
    spec = spec_load.from_mapping({"nodes": [{"name": "a", "role": "manager"}, {"name": "a", "role": "worker"}]})
    with pytest.raises(SpecError, match="'a' is used twice"):
        validation.validate(spec)


def test_overlapping_subnet_names_the_other_network():
    spec = load(network={"subnet": "172.17.5.0/24"})
    with pytest.raises(SpecError, match="overlaps network 'bridge'"):
        validation.validate(spec, taken_subnets={"bridge": "172.17.0.0/16", "other": "10.9.0.0/24"})


def test_subnet_too_small_for_the_nodes():
    with pytest.raises(SpecError, match="too small for 5 nodes"):
        validation.validate(load(network={"subnet": "10.1.0.0/29"}))


def test_even_managers_warn_with_raft_arithmetic():
    warnings = validation.validate(load(managers=2))
    assert len(warnings) == 1
    assert "majority (2 of 2)" in warnings[0] and "tolerates 0 manager loss" in warnings[0]
    assert validation.validate(load(managers=4))[0].count("tolerates 1") == 1


def test_wrong_types_are_problems_not_tracebacks():
    with pytest.raises(SpecError) as caught:
        load(managers="three", registry={"enabled": "maybe"}, swarm={"dispatcher_heartbeat": [1]})
    assert len(caught.value.problems) == 3


def test_unknown_keys_and_labels_for_unknown_nodes_are_reported():
    with pytest.raises(SpecError) as caught:
        spec_load.from_mapping({**specs.DEFAULTS, "managerz": 3, "labels": {"nope": {"a": "b"}}})
    assert any("unknown spec key 'managerz'" in p for p in caught.value.problems)
    assert any("'nope', which is not a node" in p for p in caught.value.problems)


def test_layers_file_then_invoke_config_then_flags(tmp_path):
    spec_file = tmp_path / "lab.yaml"
    spec_file.write_text("name: fromfile\nworkers: 4\nlabels:\n  worker1: {zone: a}\nswarm: {dispatcher_heartbeat: 2}\n")
    spec = spec_load.load_spec(spec_file, {"workers": 3, "swarm": {"dispatcher_heartbeat": 1}}, {"managers": 1})
    assert spec.name == "fromfile"
    assert len(spec.workers) == 3 and len(spec.managers) == 1
    assert spec.node("worker1").labels == {"zone": "a"}
    assert spec.swarm.dispatcher_heartbeat == 1.0


def test_the_tuned_profile_sets_timings_under_every_layer(tmp_path):
    tuned = spec_load.load_spec(None, {}, {"profile": "tuned"})
    assert tuned.swarm.dispatcher_heartbeat == 0.5 and tuned.demos.restart_delay == 0.0
    assert tuned.demos.health_interval == 0.5 and validation.validate(tuned) == []
    spec_file = tmp_path / "lab.yaml"
    spec_file.write_text("profile: tuned\nswarm: {dispatcher_heartbeat: 1}\n")
    mixed = spec_load.load_spec(spec_file, {}, {})
    assert mixed.swarm.dispatcher_heartbeat == 1.0 and mixed.demos.restart_delay == 0.0
    assert spec_load.from_mapping(spec_load.to_mapping(mixed)) == mixed
    assert spec_load.load_spec(None, {}, {}).demos.restart_delay == 1.0


def test_an_election_tick_other_than_10_is_refused_with_the_reason():
    with pytest.raises(SpecError) as caught:
        validation.validate(spec_load.load_spec(None, {}, {"swarm": {"election_tick": 3}, "profile": "fast"}))
    text = caught.value.user_message()
    assert "rejects swarm-raft-election-tick" in text and "unknown profile 'fast'" in text


def test_spec_file_errors_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        spec_load.load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(SpecError, match="must hold a mapping"):
        spec_load.load_spec(bad)


def test_shipped_example_spec_is_valid():
    from provision.paths import REPO
    spec = spec_load.load_spec(REPO / "lab.example.yaml")
    assert validation.validate(spec) == []


def test_round_trip_through_plain_data():
    spec = load(labels={"worker2": {"mem": "max"}})
    assert spec_load.from_mapping(spec_load.to_mapping(spec)) == spec


def test_node_addresses_are_static_and_skip_the_gateway():
    assert specs.node_address("10.199.3.0/24", 0) == "10.199.3.10"
    assert specs.node_address("10.199.3.0/24", 4) == "10.199.3.14"


def test_a_mistyped_node_names_the_lab_and_its_nodes_not_a_spec_problem():
    with pytest.raises(NodeNotFound) as caught:
        load(managers=2, workers=0).node("worker9")
    assert str(caught.value) == "no node 'worker9' in lab 'swarmdeck' (its nodes: manager1, manager2)"
    assert not isinstance(caught.value, SpecError)


# -- every problem at once: types, shapes and values together, each once -----------------------

NAME_PROBLEM = ("lab name 'Bad Name' is invalid: use 1-31 characters, lower-case letters, digits and '-', "
                "starting with a letter")


def problems_of(*args, **kwargs) -> list[str]:
    with pytest.raises(SpecError) as caught:
        spec_load.load_spec(*args, **kwargs)
    assert caught.value.exit_code == 2
    return caught.value.problems


def test_the_issue_command_lists_all_five_problems_in_spec_order():
    # as the command line gives them: every flag value is a string
    flags = {"name": "Bad Name", "managers": "0", "workers": "-3", "provider": "bogus",
             "network": {"subnet": "300.1.1.0/24"}}
    assert problems_of(None, {}, flags) == [
        NAME_PROBLEM,
        "unknown provider 'bogus': choose one of docker, libvirt, vagrant, ssh",
        "a lab needs at least one manager (managers: 1 or more)",
        "workers must be 0 or more, not -3",
        "subnet '300.1.1.0/24' is not an IPv4 CIDR such as 10.199.0.0/24 (or 'auto')",
    ]


def test_a_spec_file_with_four_errors_lists_four(tmp_path):
    spec_file = tmp_path / "lab.yaml"
    spec_file.write_text("name: Bad Name\nmanagers: two\nnetwork: {subnet: 10.1.0.0/33}\nregistry: {port: 70000}\n")
    assert problems_of(spec_file) == [
        NAME_PROBLEM,
        "managers must be a whole number, not 'two'",
        "subnet '10.1.0.0/33' is not an IPv4 CIDR such as 10.199.0.0/24 (or 'auto')",
        "registry port 70000 is not a TCP port (1-65535)",
    ]


@pytest.mark.parametrize("section, keys", [
    ("network", "keys: subnet, mtu"), ("registry", "keys: enabled, port, image, cache, cache_port, cache_remote"),
    ("swarm", "keys: dispatcher_heartbeat, election_tick"), ("demos", "keys: restart_delay, health_interval"),
    ("vagrant", "keys: provider, box"), ("labels", "node name: {key: value}"),
    ("hosts", "node name: {address, user, port, key}"),
])
def test_a_section_that_is_not_a_mapping_says_so(tmp_path, section, keys):
    spec_file = tmp_path / "lab.yaml"
    spec_file.write_text(f"{section}: abc\n")
    assert problems_of(spec_file) == [f"{section} must be a mapping ({keys}), not 'abc'"]
    assert problems_of(None, {}, {section: 7}) == [f"{section} must be a mapping ({keys}), not 7"]


def test_nodes_the_top_level_and_invoke_config_must_have_their_shape(tmp_path):
    spec_file = tmp_path / "lab.yaml"
    spec_file.write_text("nodes: abc\n")
    assert problems_of(spec_file) == ["nodes must be a list of {name, role, labels}, not 'abc'"]
    spec_file.write_text("- name: manager1\n")
    assert problems_of(spec_file) == [f"spec file {spec_file} must hold a mapping, not list"]
    assert problems_of(None, "abc") == ["the lab section of Invoke's config must be a mapping of spec keys, not 'abc'"]
    spec_file.write_text("nodes: [{name: m1, role: manager, labels: [a]}, 5]\n")
    assert problems_of(spec_file) == ["node 'm1' has labels ['a']: labels are a mapping of {key: value}",
                                      "node entry 5 needs at least a name"]


def test_a_broken_section_in_the_file_is_reported_although_a_flag_sets_one_of_its_keys(tmp_path):
    spec_file = tmp_path / "lab.yaml"
    spec_file.write_text("network: abc\n")
    assert problems_of(spec_file, {}, {"network": {"subnet": "10.1.0.0/24"}}) == [
        "network must be a mapping (keys: subnet, mtu), not 'abc'"]


def test_unknown_keys_inside_a_section_are_named():
    assert problems_of(None, {}, {"network": {"subnt": "10.1.0.0/24"}, "registry": {"enable": False}}) == [
        "unknown key 'subnt' in network (keys: subnet, mtu)",
        "unknown key 'enable' in registry (keys: enabled, port, image, cache, cache_port, cache_remote)",
    ]


def test_a_value_of_the_wrong_type_is_one_problem_not_two():
    # the stand-in of a wrong value (0, "") is not judged again: no "needs a manager", no "port 0"
    assert problems_of(None, {}, {"managers": "three"}) == ["managers must be a whole number, not 'three'"]
    assert problems_of(None, {}, {"managers": -1}) == ["managers must be 1 or more, not -1"]
    assert problems_of(None, {}, {"registry": {"port": "x"}, "network": {"subnet": [1]}, "profile": {}}) == [
        "network.subnet must be a string, not [1]", "registry.port must be a whole number, not 'x'",
        "profile must be a string, not {}"]
    assert problems_of(None, {}, {"workers": -1, "labels": {"worker1": {"a": "b"}}}) == [
        "workers must be 0 or more, not -1"]  # the labels' node may well exist once workers is right


def test_the_node_count_is_checked_against_the_automatic_subnet_and_a_given_one():
    assert validation.node_room("10.0.0.0/24") == 245
    assert len(load(managers=3, workers=242).nodes) == 245  # the last node gets .254
    assert problems_of(None, {}, {"managers": 3, "workers": 1000}) == [
        "the automatic lab network (a /24) is too small for 1003 nodes (room for 245): "
        "set network.subnet (--subnet) to a /22 or bigger"]
    assert problems_of(None, {}, {"managers": 3, "workers": 243}) == [
        "the automatic lab network (a /24) is too small for 246 nodes (room for 245): "
        "set network.subnet (--subnet) to a /23 or bigger"]
    assert len(load(managers=3, workers=1000, network={"subnet": "10.200.0.0/22"}).nodes) == 1003
    assert problems_of(None, {}, {"network": {"subnet": "10.1.0.0/29"}}) == [
        "subnet 10.1.0.0/29 is too small for 5 nodes (room for 0): choose a /28 or bigger"]


def test_existing_hosts_have_no_lab_subnet_to_fill():
    hosts = {f"worker{i}": {"address": f"192.0.{i // 200}.{i % 200 + 1}"} for i in range(1, 301)}
    hosts["manager1"] = {"address": "192.0.9.1"}
    spec = load(provider="ssh", managers=1, workers=300, hosts=hosts)
    assert len(spec.nodes) == 301


def test_a_value_from_an_invoke_lab_variable_names_the_variable():
    sources = spec_load.env_sources({"INVOKE_LAB_WORKERS": "1000", "INVOKE_LAB_NETWORK_SUBNET": "x",
                                  "INVOKE_LAB_SWARM_DISPATCHER_HEARTBEAT": "0.5", "PATH": "/bin"})
    assert sources == {"workers": "INVOKE_LAB_WORKERS", "network.subnet": "INVOKE_LAB_NETWORK_SUBNET",
                       "swarm.dispatcher_heartbeat": "INVOKE_LAB_SWARM_DISPATCHER_HEARTBEAT"}
    with pytest.raises(SpecError) as caught:
        spec_load.load_spec(None, {"workers": "many", "network": {"subnet": "x"}}, {}, sources=sources)
    assert caught.value.problems == [
        "workers must be a whole number, not 'many' (from INVOKE_LAB_WORKERS)",
        "subnet 'x' is not an IPv4 CIDR such as 10.199.0.0/24 (or 'auto') (from INVOKE_LAB_NETWORK_SUBNET)"]
    assert caught.value.hint == ("fix lab.yaml, INVOKE_LAB_NETWORK_SUBNET, INVOKE_LAB_WORKERS or the command-line "
                                 "flags and run again")
    # a flag wins over the variable: the problem is the flag's
    with pytest.raises(SpecError) as caught:
        spec_load.load_spec(None, {"workers": "1"}, {"workers": "-2"}, sources=sources)
    assert caught.value.problems == ["workers must be 0 or more, not -2"]
    assert caught.value.hint == spec_load.HINT


def test_stored_specs_are_read_without_judging_their_values():
    # a lab made by an older swarmdeck must stay reachable (lab.status, lab.down) whatever its values
    stored = spec_load.from_mapping({"name": "old", "swarm": {"election_tick": 5}})
    assert stored.swarm.election_tick == 5
    with pytest.raises(SpecError, match="network must be a mapping"):
        spec_load.from_mapping({"network": "abc"})
