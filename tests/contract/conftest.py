"""Fixtures of the provider contract: one harness per backend (tests/contract/backends.py),
each with a state folder of its own, and the labs the contract is checked on.

The labs are module-wide: ``lab`` is made once per backend and every read of it shares it
(the power tests leave its machine running again); ``lab_b`` is grown, shrunk and destroyed
by the fixtures below, in that order, each keeping what it saw for the tests to check.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from provision import inventory
from provision.plan import Machine
from provision.spec.model import LabSpec
from tests.contract.backends import BACKENDS, Backend, MadeLab

ADDED = "worker9"  # the node lab.add adds to lab_b


@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=[pytest.mark.integration] if harness.real_engine else []) for name, harness in BACKENDS.items()])
def backend(request, tmp_path_factory) -> Backend:
    cls = BACKENDS[request.param]
    engine = {"client": request.getfixturevalue("engine")} if cls.real_engine else {}  # tests/conftest.py's
    folder = tmp_path_factory.mktemp(f"contract-{request.param}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SWARMDECK_HOME", str(folder / "home"))
        harness = cls(folder, patch, **engine)
        try:
            yield harness
        finally:
            harness.close()


@pytest.fixture(scope="module")
def lab(backend) -> MadeLab:
    return backend.make_lab()


@pytest.fixture(scope="module")
def lab_b(backend) -> MadeLab:
    return backend.make_lab()


@dataclass
class Grown:
    added: str
    created: list[Machine]  # what create returned for the added node alone
    listed: list[Machine]


@pytest.fixture(scope="module")
def grown(backend, lab_b) -> Grown:
    """lab_b after lab.add of one more worker (backends that add machines)."""
    if not backend.provider.capabilities.adds_machines:
        pytest.skip(f"{backend.id} does not add machines (capabilities.adds_machines)")
    _plan, created = backend.add_node(lab_b.name, ADDED)
    return Grown(ADDED, created, backend.provider.list(lab_b.name))


@dataclass
class Shrunk:
    removed: str
    before: list[Machine]
    after: list[Machine]
    labs: list[str]


@pytest.fixture(scope="module")
def shrunk(request, backend, lab_b) -> Shrunk:
    """lab_b after lab.remove of its last node (the added one, where the backend adds machines)."""
    if backend.provider.capabilities.adds_machines:
        request.getfixturevalue("grown")
    before = backend.provider.list(lab_b.name)
    removed = before[-1].name
    backend.remove_node(lab_b.name, removed)
    return Shrunk(removed, before, backend.provider.list(lab_b.name), backend.provider.labs())


@dataclass
class Retired:
    counts: dict[str, int]  # what the first destroy said it removed
    leftovers: list[str]  # what the backend still held of the lab then
    listed: list[Machine]  # after lab.down (an ssh lab's machines are its inventory until then)
    again: dict[str, int]  # what a second destroy, after lab.down's state removal, removed
    labs: list[str]
    stored_spec: LabSpec | None


@pytest.fixture(scope="module")
def retired(backend, lab_b) -> Retired:
    """lab_b destroyed the way lab.down does it: the backend's destroy, then the state folder."""
    provider = backend.provider
    counts = provider.destroy(lab_b.name)
    leftovers = backend.leftovers(lab_b.name)
    backend.forget(lab_b.name)
    again = provider.destroy(lab_b.name)
    return Retired(counts, leftovers, provider.list(lab_b.name), again, provider.labs(),
                   inventory.current_spec(provider, lab_b.name))
