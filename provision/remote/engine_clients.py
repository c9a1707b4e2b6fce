"""Docker SDK clients: the engine that hosts a lab's machines, and the lab nodes' engines.

The host engine is found the same way whatever the shell holds: ``SWARMDECK_DOCKER_HOST``
(with ``SWARMDECK_DOCKER_CERT_PATH`` for TLS) when set; else the engine recorded in the
lab's state folder when the lab was created; else the shell's ``DOCKER_*`` settings,
unless they point at a lab node (as ``eval "$(swarmdeck lab.env manager1)"`` makes them),
which are then ignored; else the local socket. So swarmdeck keeps working in a shell
whose docker CLI talks to a lab, as docker-machine's verbs do after its ``env``.

Node engines listen on TCP 2376 with mutual TLS only, with the lab's certificates.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Mapping

import docker
import docker.constants
import docker.errors
import docker.tls
import docker.utils

from provision import state
from provision.errors import ProviderUnavailable
from provision.paths import home
from provision.remote import reach, tls

API_VERSION = "1.41"  # Debian bookworm's engine (20.10) and every newer one speak it
OVERRIDE = "SWARMDECK_DOCKER_HOST"
OVERRIDE_CERTS = "SWARMDECK_DOCKER_CERT_PATH"
SETTINGS = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
HOST_TIMEOUT = 120
# What one small API call (``/version``) of a container node's engine takes, at most, on an
# idle machine; the pace of a lab is how many times longer its first manager takes (at
# least 1, at most MAX_PACE: the pace only stretches timeouts, so erring high is harmless).
REFERENCE_CALL_SECONDS = 0.05
MAX_PACE = 10.0


def node_client(lab: str, address: str, *, timeout: int = 30) -> docker.DockerClient:
    """A client for the engine of the lab node at ``address`` (by the lab's route: straight,
    or a local port of its tunnel; the certificate is valid for 127.0.0.1 too)."""
    certs = tls.client_certs(lab)
    host, port = reach.endpoint(lab, address, tls.ENGINE_PORT)
    config = docker.tls.TLSConfig(client_cert=(str(certs.cert), str(certs.key)), ca_cert=str(certs.ca), verify=True)
    client = docker.DockerClient(
        base_url=f"tcp://{host}:{port}", tls=config, version=API_VERSION, timeout=timeout
    )
    # Lab traffic goes straight to the lab: no proxy from the environment, and no
    # REQUESTS_CA_BUNDLE replacing the lab's CA (requests lets it override `verify`).
    client.api.trust_env = False
    return client


def measure_pace(client: docker.DockerClient, samples: int = 5) -> float:
    """How many times slower than a container node this engine answers a small call."""
    durations = []
    for _ in range(samples):
        started = time.monotonic()
        client.version()
        durations.append(time.monotonic() - started)
    median = sorted(durations)[len(durations) // 2]
    return round(min(MAX_PACE, max(1.0, median / REFERENCE_CALL_SECONDS)), 1)


def points_at_a_lab(environ: Mapping[str, str]) -> bool:
    """Whether these ``DOCKER_*`` settings are a lab node's (made by ``lab.env``)."""
    cert_path = environ.get("DOCKER_CERT_PATH", "")
    if not cert_path:
        return False
    labs = (home() / "labs").resolve()
    try:
        return Path(cert_path).resolve().is_relative_to(labs)
    except OSError:
        return False


def environment_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host engine's ``DOCKER_*`` settings from the environment (empty: the local socket)."""
    environ = os.environ if environ is None else environ
    if environ.get(OVERRIDE):
        settings = {"DOCKER_HOST": environ[OVERRIDE]}
        if environ.get(OVERRIDE_CERTS):
            settings.update(DOCKER_CERT_PATH=environ[OVERRIDE_CERTS], DOCKER_TLS_VERIFY="1")
        return settings
    if points_at_a_lab(environ):
        return {}
    return {key: environ[key] for key in SETTINGS if environ.get(key)}


def host_settings(lab: str | None = None) -> dict[str, str]:
    """The settings of the engine that hosts ``lab`` (or, with no lab, new labs)."""
    if os.environ.get(OVERRIDE) or lab is None:
        return environment_settings()
    recorded = state.read_engine(lab)
    return recorded if recorded is not None else environment_settings()


def describe(settings: Mapping[str, str]) -> str:
    return settings.get("DOCKER_HOST") or "the local socket (unix:///var/run/docker.sock)"


def host_client(lab: str | None = None, *, timeout: int = HOST_TIMEOUT) -> docker.DockerClient:
    """A client of the engine that hosts ``lab``'s machines (see the module docstring).

    Raises:
        ProviderUnavailable: when that engine does not answer, with how to start one.
    """
    settings = host_settings(lab)
    whose = f" (recorded for lab {lab} when it was made)" if lab and state.read_engine(lab) is not None else ""
    return engine_client(settings, timeout=timeout, whose=whose)


def engine_client(settings: Mapping[str, str], *, timeout: int = HOST_TIMEOUT, whose: str = "") -> docker.DockerClient:
    """A client of the engine these ``DOCKER_*`` settings name (empty: the local socket), pinged.

    Raises:
        ProviderUnavailable: when that engine does not answer, with how to start one.
    """
    # an empty environment would make docker-py read os.environ: name the local socket instead
    environment = dict(settings) or {"DOCKER_HOST": docker.constants.DEFAULT_UNIX_SOCKET}
    try:
        client = docker.DockerClient(timeout=timeout, **docker.utils.kwargs_from_env(environment=environment))
        client.ping()
        return client
    except docker.errors.DockerException as err:
        raise ProviderUnavailable(
            f"no Docker engine answers at {describe(settings)}{whose}: {err}",
            hint="start one: `dockerd &` (Debian: apt-get install docker.io), or name another with "
                 f"{OVERRIDE}; `./bootstrap.sh up` does both",
        ) from err

