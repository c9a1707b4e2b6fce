"""Docker SDK clients for the engines of lab nodes (mutual TLS on port 2376)."""

from __future__ import annotations

import docker
import docker.errors
import docker.tls

from provision import tls
from provision.errors import ProviderUnavailable

API_VERSION = "1.41"  # Debian bookworm's engine (20.10) and every newer one speak it


def node_client(lab: str, address: str, *, timeout: int = 30) -> docker.DockerClient:
    """A client for the engine of the lab node at ``address``."""
    certs = tls.client_certs(lab)
    config = docker.tls.TLSConfig(client_cert=(str(certs.cert), str(certs.key)), ca_cert=str(certs.ca), verify=True)
    client = docker.DockerClient(
        base_url=f"tcp://{address}:{tls.ENGINE_PORT}", tls=config, version=API_VERSION, timeout=timeout
    )
    # Lab traffic goes straight to the lab: no proxy from the environment, and no
    # REQUESTS_CA_BUNDLE replacing the lab's CA (requests lets it override `verify`).
    client.api.trust_env = False
    return client


def local_client() -> docker.DockerClient:
    """The engine swarmdeck runs node containers on (DOCKER_HOST or the local socket).

    Raises:
        ProviderUnavailable: when no engine answers, with how to start one.
    """
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException as err:
        raise ProviderUnavailable(
            f"no Docker engine answers ({err})",
            hint="start one: `dockerd &` (Debian: apt-get install docker.io), or set DOCKER_HOST; "
            "`./bootstrap.sh up` does both",
        ) from err
