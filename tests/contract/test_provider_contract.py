"""The Provider contract (provision/providers/base.py), written once and checked against every
backend: docker on the real engine, libvirt on its test driver, vagrant and ssh with fakes
where the real ones need VMs (tests/contract/backends.py). A failing test's id names the
backend, its name the promise it broke.
"""

from __future__ import annotations

import inspect
import ipaddress
import typing

import pytest

from provision.errors import ProviderError, ProviderUnavailable
from provision.plan import PAUSED, RUNNING, STOPPED, LabPlan, Machine
from provision.progress import RecordingReporter
from provision.providers import REGISTRY, get_provider
from provision.providers.base import Capabilities, Provider, SSHTarget
from provision.remote import node_files
from tests.contract.backends import BACKENDS

METHODS = [name for name, value in vars(Provider).items() if inspect.isfunction(value) and not name.startswith("_")]
ATTRIBUTES = typing.get_type_hints(Provider)  # name: str, capabilities: Capabilities


def describe(function) -> list[tuple]:
    """A method's signature as the contract compares it: each parameter's name, kind, default
    and resolved type, and the resolved return type."""
    hints = typing.get_type_hints(function)
    return [(p.name, p.kind.description, p.default, hints.get(p.name)) for p in inspect.signature(function).parameters.values()] \
        + [("return", hints.get("return"))]


def state_of(provider, lab: str, node: str) -> str:
    return next(m.state for m in provider.list(lab) if m.name == node)


# -- the method set --------------------------------------------------------------------------


def test_every_registered_provider_is_checked_here():
    assert sorted(BACKENDS) == sorted(REGISTRY), "a provider of provision.providers.REGISTRY has no harness in " \
                                                 "tests/contract/backends.py (BACKENDS)"


def test_the_registry_makes_this_backend_under_its_name(backend):
    assert backend.provider.name == backend.id
    assert type(get_provider(backend.id)) is type(backend.provider)


def test_every_protocol_member_exists_and_is_callable(backend):
    missing = [name for name in METHODS if not callable(getattr(backend.provider, name, None))]
    missing += [f"{name} (not a {kind.__name__})" for name, kind in ATTRIBUTES.items()
                if not isinstance(getattr(backend.provider, name, None), kind)]
    assert not missing, f"{backend.id} lacks {', '.join(missing)}"


def test_every_protocol_method_has_the_documented_signature(backend):
    cls = type(backend.provider)
    differing = [f"{name}{inspect.signature(getattr(cls, name))} is not Provider.{name}{inspect.signature(getattr(Provider, name))}"
                 for name in METHODS if describe(getattr(cls, name)) != describe(getattr(Provider, name))]
    assert not differing, f"{backend.id}: " + "; ".join(differing)


def test_capabilities_is_a_capabilities(backend):
    capabilities = backend.provider.capabilities
    assert isinstance(capabilities, Capabilities)
    assert capabilities.boot_timeout > 0 and capabilities.power in ("machine", "engine")
    assert capabilities.node_memory_mb >= 0


def test_check_passes_where_the_backend_can_be_used(backend):
    assert backend.provider.check() is None


def test_check_refuses_an_unusable_backend_with_a_hint(backend):
    with backend.unusable() as provider:
        if provider is None:
            pytest.skip(f"{backend.id} has nothing to check before its machines are reached")
        with pytest.raises(ProviderUnavailable) as refused:
            provider.check()
    assert refused.value.hint, f"{backend.id}: {refused.value} has no hint"


# -- plans -----------------------------------------------------------------------------------


def test_resolve_gives_every_node_a_distinct_address(backend):
    spec = backend.spec(backend.new_lab_name(), managers=1, workers=2)
    plan = backend.provider.resolve(spec)
    assert isinstance(plan, LabPlan) and plan.spec == spec
    assert [(n.name, n.role) for n in plan.nodes] == [(n.name, n.role) for n in spec.nodes]
    addresses = [n.address for n in plan.nodes]
    assert len(set(addresses)) == len(addresses), f"{backend.id} gave nodes one address: {addresses}"
    if plan.subnet:  # on the lab network the backend chose
        assert all(ipaddress.ip_address(a) in ipaddress.ip_network(plan.subnet) for a in addresses), (plan.subnet, addresses)
    else:  # existing machines keep their own addresses: the inventory's
        assert addresses == [spec.hosts[n.name].address for n in plan.nodes]


def test_resolve_of_an_existing_lab_gives_its_machines_addresses(backend, lab):
    again = backend.provider.resolve(lab.spec)
    assert again.subnet == lab.plan.subnet
    assert {m.name: m.address for m in backend.provider.list(lab.name)} == {n.name: n.address for n in again.nodes}


def test_stored_spec_is_the_spec_the_lab_was_created_with(backend, lab):
    stored = backend.provider.stored_spec(lab.name)
    assert stored is not None and stored.name == lab.name
    assert stored.nodes == lab.spec.nodes and stored.hosts == lab.spec.hosts
    assert backend.provider.stored_spec("it-contract-never-made") is None


def test_ensure_network_again_changes_nothing(backend, lab):
    assert backend.provider.ensure_network(lab.plan) is False


# -- machines --------------------------------------------------------------------------------


def test_create_returns_one_running_machine_per_node(backend, lab):
    assert [m.name for m in lab.created] == [n.name for n in lab.plan.nodes]
    assert all(isinstance(m, Machine) and m.state == RUNNING for m in lab.created), lab.created


def test_list_gives_one_running_machine_per_node_of_this_provider(backend, lab):
    listed = backend.provider.list(lab.name)
    assert [(m.name, m.role, m.address) for m in listed] == [(n.name, n.role, n.address) for n in lab.plan.nodes]
    assert all(m.state == RUNNING and m.provider == backend.id and m.lab == lab.name for m in listed), listed


def test_create_again_changes_nothing(backend, lab):
    reporter = RecordingReporter()
    again = backend.provider.create(lab.plan, lambda node: node_files.files(lab.plan, node), reporter)
    assert [(m.name, m.id) for m in again] == [(m.name, m.id) for m in lab.created]
    assert not reporter.kinds("changed"), f"{backend.id} changed {reporter.kinds('changed')} on a second create"


def test_machine_finds_each_node(backend, lab):
    for listed in backend.provider.list(lab.name):
        assert backend.provider.machine(lab.name, listed.name) == listed


def test_machine_of_an_unknown_node_is_a_provider_error_naming_the_lab(backend, lab):
    with pytest.raises(ProviderError) as missing:
        backend.provider.machine(lab.name, "nosuchnode")
    assert lab.name in str(missing.value) and missing.value.hint


def test_labs_lists_the_lab(backend, lab):
    assert lab.name in backend.provider.labs()


EXPECTED = {"stop": STOPPED, "kill": STOPPED, "pause": PAUSED}


@pytest.mark.parametrize("verb", list(EXPECTED))
def test_a_power_verb_changes_the_state_and_start_brings_the_machine_back(backend, lab, verb):
    """lab.stop/kill/pause act on the machine (capabilities.power "machine": ``list`` shows the
    new state) or on its engine only ("engine": the machine stays up, its engine changes)."""
    provider, node = backend.provider, lab.plan.nodes[-1].name
    on_engine = provider.capabilities.power == "engine"
    getattr(provider, verb)(provider.machine(lab.name, node))
    try:
        if on_engine:
            assert state_of(provider, lab.name, node) == RUNNING, f"{verb} of an existing host powered it off"
            assert backend.engine_state(lab.name, node) == EXPECTED[verb]
        else:
            assert state_of(provider, lab.name, node) == EXPECTED[verb]
    finally:
        provider.start(provider.machine(lab.name, node))
    assert state_of(provider, lab.name, node) == RUNNING
    if on_engine:
        assert backend.engine_state(lab.name, node) == RUNNING


def test_ssh_target_is_where_swarmdeck_logs_in_as_root(backend, lab):
    for machine in backend.provider.list(lab.name):
        target = backend.provider.ssh_target(machine)
        assert isinstance(target, SSHTarget)
        assert (target.host, target.user) == (machine.address, "root") and 0 < target.port < 65536
        if lab.spec.hosts:  # existing machines: where the inventory says sshd listens
            assert target.port == lab.spec.hosts[machine.name].port


# -- what a backend cannot do ----------------------------------------------------------------


def test_console_without_the_capability_is_refused_with_a_hint(backend, lab):
    if backend.provider.capabilities.console:
        pytest.skip(f"{backend.id} has a console")
    with pytest.raises(ProviderError) as refused:
        backend.provider.console(backend.provider.list(lab.name)[0], "true")
    assert refused.value.hint


def test_console_runs_a_command_on_the_machine(backend, lab):
    if not backend.provider.capabilities.console:
        pytest.skip(f"{backend.id} has no console")
    machine = backend.provider.list(lab.name)[0]
    assert backend.provider.console(machine, "hostname") == (0, f"{machine.name}\n")


@pytest.mark.parametrize("verb", ["disconnect", "reconnect"])
def test_a_partition_without_the_capability_is_refused_with_a_hint(backend, lab, verb):
    if backend.provider.capabilities.partition:
        pytest.skip(f"{backend.id} can cut a machine off")
    with pytest.raises(ProviderError) as refused:
        getattr(backend.provider, verb)(backend.provider.list(lab.name)[0])
    assert refused.value.hint


def test_disconnect_and_reconnect_cut_and_heal_the_machines_link(backend, lab):
    if not backend.provider.capabilities.partition:
        pytest.skip(f"{backend.id} cannot cut a machine off")
    machine = backend.provider.list(lab.name)[0]
    if backend.link(machine) is None:
        pytest.skip(f"{backend.id}'s harness cannot see a machine's link (libvirt's test driver has no live "
                    "device update); the VM tier checks it")
    backend.provider.disconnect(machine)
    try:
        assert backend.link(machine) == "down"
        assert state_of(backend.provider, lab.name, machine.name) == RUNNING  # cut off, still running
    finally:
        backend.provider.reconnect(machine)
    assert backend.link(machine) == "up"


# -- growing, shrinking, removing the lab ----------------------------------------------------


def test_create_of_an_added_node_returns_and_lists_it_with_the_others(backend, lab_b, grown):
    names = [n.name for n in lab_b.plan.nodes] + [grown.added]
    assert grown.added in [m.name for m in grown.created], f"create of {grown.added} returned {grown.created}"
    assert [m.name for m in grown.listed] == names
    assert all(m.state == RUNNING for m in grown.listed), grown.listed


def test_remove_takes_one_machine_and_leaves_the_others_and_the_lab(backend, lab_b, shrunk):
    assert [m.name for m in shrunk.after] == [m.name for m in shrunk.before if m.name != shrunk.removed]
    assert all(m.state == RUNNING for m in shrunk.after), shrunk.after
    assert lab_b.name in shrunk.labs


def test_destroy_removes_every_resource_of_the_lab(backend, retired):
    assert retired.leftovers == [] and retired.listed == []
    assert any(retired.counts.values()), f"{backend.id}'s destroy said it removed nothing: {retired.counts}"


def test_destroy_again_is_no_error_and_removes_nothing(backend, retired):
    assert not any(retired.again.values()), retired.again


def test_a_destroyed_lab_is_no_longer_listed(backend, lab_b, retired):
    assert lab_b.name not in retired.labs and retired.stored_spec is None
