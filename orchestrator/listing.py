"""`lab.ls`: every lab on this machine at a glance, like `docker-machine ls` and `kind get clusters`.

The labs are those with a state folder here that records their provider
(``provision.state.known_labs``), plus docker-provider labs made before that record existed:
their network is on the host engine and their state folder (keys, certificates) is here.
Each lab is asked on a thread of its own with short timeouts, and the listing waits for
none longer than ``DEADLINE``: a lab whose engine, libvirt or nodes hang is listed as
unreachable with the reason, it does not hold up the others.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

from orchestrator.access import engine_url
from orchestrator.clients import ClientPool
from orchestrator.views import LAB_BROKEN, LabStatus, lab_status
from provision import inventory, state
from provision.errors import redact
from provision.paths import lab_dir
from provision.providers import get_provider
from provision.providers.docker.provider import DockerProvider
from provision.remote import docker_contexts, engine_clients

QUICK = 3  # seconds: timeout of each engine call of lab.ls (host engine, node engines)
DEADLINE = 6.0  # seconds: a lab that has not answered by then is listed as unreachable
UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class LabSummary:
    """One row of lab.ls (one object of its --json)."""

    name: str
    provider: str
    state: str  # running | partly stopped | stopped | broken | unreachable
    ready: int  # nodes ready (in the swarm, machine running)
    total: int
    leader: str | None
    registry: str | None
    active: str | None  # the node this shell's docker CLI talks to (lab.env, or DOCKER_CONTEXT)
    error: str | None = None  # why the lab is unreachable or broken

    def to_json(self) -> dict:
        return asdict(self)


def active_node(lab: str, addresses: Mapping[str, str], environ: Mapping[str, str],
                cert_folder: Path) -> str | None:
    """The node of ``lab`` that this shell's docker CLI talks to, as docker-machine's ACTIVE.

    ``DOCKER_HOST`` decides, as for the docker CLI: the node whose engine URL
    (tcp://ADDR:2376) it is, provided nothing in the shell names another lab
    (``DOCKER_CERT_PATH`` another lab's certificates, ``SWARMDECK_LAB`` another lab:
    existing hosts of two labs may share addresses). Without ``DOCKER_HOST``, a
    ``DOCKER_CONTEXT`` naming the node's context (``lab.context``) decides.
    """
    host = environ.get("DOCKER_HOST", "").rstrip("/")
    if host:
        if environ.get("SWARMDECK_LAB") not in (None, "", lab):
            return None
        cert_path = environ.get("DOCKER_CERT_PATH")
        if cert_path and os.path.realpath(cert_path) != os.path.realpath(cert_folder):
            return None
        found = next((node for node, address in addresses.items() if engine_url(address) == host), None)
        tunneled = host.startswith("tcp://127.0.0.1:") and environ.get("SWARMDECK_LAB") == lab
        return found or (environ.get("SWARMDECK_NODE") if tunneled and environ.get("SWARMDECK_NODE") in addresses else None)
    wanted = environ.get("DOCKER_CONTEXT", "")
    return next((node for node in addresses if wanted and docker_contexts.context_name(lab, node) == wanted), None)


def summary(status: LabStatus, environ: Mapping[str, str]) -> LabSummary:
    """A lab.ls row from a lab's status."""
    leader = next((n.name for n in status.nodes if n.leader), None)
    addresses = {n.name: n.address for n in status.nodes}
    active = active_node(status.name, addresses, environ, lab_dir(status.name) / "tls" / "client")
    return LabSummary(status.name, status.provider, status.state, sum(n.ready for n in status.nodes),
                      len(status.nodes), leader, status.registry, active)


def unreachable(name: str, provider: str, reason: str) -> LabSummary:
    return LabSummary(name, provider, UNREACHABLE, 0, 0, None, None, None, redact(reason))


def _provider(name: str, lab: str):
    """The lab's provider; the docker provider gets a host engine client with a short timeout."""
    if name == "docker":
        return DockerProvider(engine_clients.host_client(lab, timeout=QUICK), lab=lab)
    return get_provider(name, lab=lab)


def ask(name: str, environ: Mapping[str, str]) -> LabSummary:
    """The lab.ls row of lab ``name``, asking its provider and node engines (short timeouts)."""
    provider_name = state.read_provider(name)
    try:
        provider = _provider(provider_name, name)
        spec = inventory.current_spec(provider, name)
        if spec is None:
            return LabSummary(name, provider_name, LAB_BROKEN, 0, 0, None, None, None,
                              f"the {provider_name} provider holds none of its machines (lab.down removes what is left)")
        plan = provider.resolve(spec)
        machines = provider.list(name)
        with ClientPool(plan, timeout=QUICK) as clients:
            return summary(lab_status(plan, machines, clients), environ)
    except Exception as err:  # noqa: BLE001 - one lab's failure, whatever it is, must not hide the others
        return unreachable(name, provider_name, str(err) or type(err).__name__)


def docker_labs() -> tuple[list[str], list[str]]:
    """Docker-provider labs whose network the host engine holds, without a provider record:
    (those with a state folder here, made before that record existed; those without: made
    under another SWARMDECK_HOME, which lab.ls cannot ask, having none of their certificates)."""
    found = DockerProvider(engine_clients.host_client(timeout=QUICK)).labs()
    unrecorded = [lab for lab in found if not state.exists(lab)]
    return ([lab for lab in unrecorded if (lab_dir(lab) / "tls").is_dir()],
            [lab for lab in unrecorded if not (lab_dir(lab) / "tls").is_dir()])


class _Background:
    """A call on a daemon thread, so that one that hangs past the deadline is left behind
    (it neither holds up lab.ls nor keeps the interpreter from exiting)."""

    def __init__(self, call: Callable[[], object]):
        self.value: object = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call: Callable[[], object]) -> None:
        try:
            self.value = call()
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            self.error = err

    def wait(self, until: float) -> bool:
        """True when the call has finished by ``until`` (a time.monotonic() value)."""
        self.thread.join(max(0.0, until - time.monotonic()))
        return not self.thread.is_alive()


def list_labs(environ: Mapping[str, str] | None = None, deadline: float = DEADLINE) -> tuple[list[LabSummary], list[str]]:
    """Every lab on this machine, asked in parallel, and the names of docker labs on the host
    engine that have no state folder here (see ``docker_labs``)."""
    environ = os.environ if environ is None else environ
    until = time.monotonic() + deadline
    discovery = _Background(docker_labs)
    asked = {name: _Background(lambda name=name: ask(name, environ)) for name in state.known_labs()}
    foreign: list[str] = []
    if discovery.wait(until) and discovery.error is None:
        legacy, foreign = discovery.value  # type: ignore[misc]
        asked.update({name: _Background(lambda name=name: ask(name, environ)) for name in legacy if name not in asked})
    rows = []
    for name, call in sorted(asked.items()):
        if not call.wait(until):
            rows.append(unreachable(name, state.read_provider(name), f"no answer within {deadline:g} s"))
        elif call.error is not None:
            rows.append(unreachable(name, state.read_provider(name), str(call.error)))
        else:
            rows.append(call.value)  # type: ignore[arg-type]
    return rows, sorted(foreign)
