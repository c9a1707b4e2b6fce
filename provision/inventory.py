"""Which labs exist on this machine and how to open one: its provider, its spec as created
and as it is now (lab.add and lab.remove change it), and its plan (with the pace measured
when it was made). Removing a lab forgets all of it."""

from __future__ import annotations

import dataclasses
import os

from provision import hints, state
from provision.errors import LabError, SpecError
from provision.plan import LabPlan
from provision.providers import get_provider
from provision.providers.base import Provider
from provision.providers.libvirt import connection as libvirt_connection
from provision.remote import engine_clients, reach
from provision.spec import model as specs

SPEC_FILE = state.SPEC_FILE  # in the lab's state folder: the spec as lab.add / lab.remove left it


def provider_of(name: str) -> str:
    """The provider that made lab ``name`` (labs made before this record existed: docker)."""
    return state.read_provider(name)


def record_provider(spec: specs.LabSpec) -> None:
    """Remember the lab's provider and, the first time, the engine that hosts it."""
    state.write_provider(spec.name, spec.provider)
    if state.read_engine(spec.name) is None:
        settings = engine_clients.environment_settings()
        if spec.provider == "libvirt" and os.environ.get(libvirt_connection.URI_ENV):
            settings = {state.LIBVIRT_URI: os.environ[libvirt_connection.URI_ENV]}  # qemu+ssh://... : the lab's libvirt host
        state.write_engine(spec.name, settings)


def existing_lab(name: str, provider_name: str | None = None) -> tuple[Provider, LabPlan]:
    """The provider and plan of the lab called ``name``, as it is now.

    Raises:
        LabError: when there is no such lab, naming the labs there are.
    """
    provider = get_provider(provider_name or provider_of(name), lab=name)
    current = current_spec(provider, name)
    if current is None:
        others = ", ".join(provider.labs()) or "none"
        raise LabError(f"there is no lab named {name!r} (labs here: {others})",
                       hint=f"create it with {hints.command('lab.up', lab=name)}")
    return provider, with_measured_pace(provider.resolve(current))


def with_measured_pace(plan: LabPlan) -> LabPlan:
    """``plan`` with the pace measured when the lab was made, when that is slower than the
    provider's own estimate (existing hosts, or a loaded machine)."""
    measured = state.read_pace(plan.name)
    return dataclasses.replace(plan, pace=measured) if measured > plan.pace else plan


def current_spec(provider: Provider, name: str) -> specs.LabSpec | None:
    """The lab's spec now: the state folder's copy once lab.add or lab.remove changed its
    nodes, else the one the backend recorded when the lab was created (None: no lab)."""
    return _current(provider.stored_spec(name), name)


def _current(created: specs.LabSpec | None, name: str) -> specs.LabSpec | None:
    return state.current_spec(name, created)


def record_spec(spec: specs.LabSpec) -> None:
    state.write_current_spec(spec)


def spec_for_up(spec: specs.LabSpec, provider: Provider) -> specs.LabSpec:
    """The spec ``lab.up`` works to: for an existing lab, the nodes it has now.

    Re-running ``lab.up`` with the spec the lab was created with keeps the nodes that
    lab.add and lab.remove changed since; a spec asking for other nodes is refused.
    """
    created = provider.stored_spec(spec.name)
    current = _current(created, spec.name)
    if created is None or current is None:
        return spec
    shape = _shape(spec)
    if shape not in (_shape(created), _shape(current)):
        have = ", ".join(f"{n}({r})" for n, r in _shape(current))
        raise SpecError([f"lab {spec.name!r} exists with other nodes: {have}"],
                        hint=f"change a running lab's nodes with {hints.command('lab.add')} / {hints.command('lab.remove')}, "
                             f"or remove it first: {hints.command('lab.down', lab=spec.name)}")
    return dataclasses.replace(spec, nodes=current.nodes)


def _shape(spec: specs.LabSpec) -> list[tuple[str, str]]:
    return [(n.name, n.role) for n in spec.nodes]


def destroy(name: str, provider_name: str | None = None) -> dict[str, int]:
    """Remove every resource of lab ``name`` and its state folder; no error if none is left."""
    counts = get_provider(provider_name or provider_of(name), lab=name).destroy(name)
    if reach.stop(name):
        counts["tunnels"] = 1
    if state.remove(name):
        counts["state folders"] = 1
    return counts
