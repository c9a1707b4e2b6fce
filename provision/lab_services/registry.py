"""The lab's private registry: a ``registry`` container on the first manager.

It runs as the tutorials run it (restart always, port 5000, a volume for its
data). Offline, its image is made on the node itself from Debian's
docker-registry binary, so nothing is pulled. Every engine of the lab lists it
as an insecure registry (daemon.json), so plain HTTP is accepted.
"""

from __future__ import annotations

import json
import shlex
import urllib.error

import docker
import docker.errors
import requests

from provision import hints
from provision.errors import LabError, ProviderError
from provision.paths import TEMPLATES
from provision.progress import Reporter
from provision.remote import direct_http
from provision.remote.host import Host, check
from provision.wait import wait_until

LOCAL_IMAGE = "swarmdeck/registry:2"
CONTAINER = "registry"
VOLUME = "registry-data"
BINARY = "/usr/bin/docker-registry"


def ensure_registry(client: docker.DockerClient, host: Host, address: str, image: str, reporter: Reporter, *,
                    timeout: float = 30) -> bool:
    """Make the registry answer at ``address`` (ADDR:PORT) within ``timeout`` seconds; return
    whether anything changed."""
    changed = _ensure_image(client, host, image or LOCAL_IMAGE, pull=bool(image))
    done = _ensure_container(client, image or LOCAL_IMAGE, int(address.rsplit(":", 1)[1]))
    wait_until(lambda: _answers(address), timeout=timeout, describe=f"the registry at {address} to answer",
               hint=f"see `docker logs {CONTAINER}` on the first manager")
    changed = changed or bool(done)
    reporter.result(f"registry {address}" + (f" ({done})" if done else ""), changed)
    return changed


def _ensure_image(client: docker.DockerClient, host: Host, image: str, *, pull: bool) -> bool:
    try:
        client.images.get(image)
        return False
    except docker.errors.ImageNotFound:
        pass
    if pull:
        try:
            client.images.pull(image)
        except docker.errors.APIError as err:
            raise ProviderError(f"pulling the registry image {image} failed: {err.explanation or err}",
                                hint="leave registry.image empty to build the registry offline") from err
    else:
        check(host, build_command(), hint="the node image must contain Debian's docker-registry package")
    return True


def build_command() -> str:
    """Shell that turns the node's docker-registry binary into a tiny image, offline."""
    config = (TEMPLATES / "registry" / "config.yml").read_text()
    changes = [
        'ENTRYPOINT ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]',
        "EXPOSE 5000", 'VOLUME ["/var/lib/registry"]', "LABEL io.swarmdeck.kind=registry-image",
    ]
    change_args = " ".join(f"-c {shlex.quote(c)}" for c in changes)
    return (
        "set -e; d=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT; "
        f"for f in {BINARY} $(ldd {BINARY} | grep -o '/[^ ]*'); do cp --parents -L \"$f\" \"$d\"; done; "
        "mkdir -p \"$d/etc/docker/registry\" \"$d/var/lib/registry\" \"$d/tmp\"; "
        f"printf %s {shlex.quote(config)} > \"$d/etc/docker/registry/config.yml\"; "
        f"tar -C \"$d\" -c . | docker import {change_args} - {LOCAL_IMAGE} >/dev/null"
    )


def _ensure_container(client: docker.DockerClient, image: str, port: int) -> str:
    """Run the registry container and say what that took ("": nothing). A stopped or killed
    container is started again (one stopped by hand stays down whatever its restart policy);
    a new one mounts the same volume, so the images pushed before are kept either way."""
    try:
        container = client.containers.get(CONTAINER)
        if container.status in ("running", "restarting"):  # restarting: the engine starts it itself
            return ""
        if container.status == "paused":
            container.unpause()
            return "container unpaused"
        container.start()
        return f"container {container.status} before, started again: its images are kept"
    except docker.errors.NotFound:
        pass
    try:
        client.containers.run(
            image, name=CONTAINER, detach=True, restart_policy={"Name": "always"},
            ports={"5000/tcp": port}, volumes={VOLUME: {"bind": "/var/lib/registry", "mode": "rw"}},
            labels={"io.swarmdeck.kind": "registry"},
        )
    except docker.errors.APIError as err:
        raise ProviderError(f"the registry container could not start on port {port}: {err.explanation or err}",
                            hint="is that port taken on the first manager? set registry.port in lab.yaml") from err
    return f"container created, with the {VOLUME} volume"


def check_running(client: docker.DockerClient, node: str, lab: str) -> None:
    """Raise unless the registry container runs on ``node`` (the lab's first manager), saying
    what its engine reports and that ``lab.up`` brings it back with the images it held.

    Raises:
        ProviderError: the container is stopped, paused or gone, or the node's engine is silent.
    """
    repair = hints.command("lab.up", lab=lab)
    try:
        container = client.containers.get(CONTAINER)
    except docker.errors.NotFound:
        kept = _has_volume(client)
        raise ProviderError(
            f"the lab registry is not running: there is no {CONTAINER} container on {node}",
            hint=f"{repair} creates it again" + (f"; the images pushed before are kept on its {VOLUME} volume" if kept
                                                 else f" (its {VOLUME} volume is gone too: push the images again)"),
        ) from None
    except (docker.errors.DockerException, requests.RequestException) as err:
        raise ProviderError(f"the lab registry's node {node} does not answer: {err}",
                            hint=f"{hints.command('lab.status', lab=lab)} shows whether {node} runs; "
                                 f"{hints.command('lab.start', node, lab=lab)} starts it") from err
    if container.status != "running":
        raise ProviderError(f"the registry container on {node} is not running ({_describe_state(container)})",
                            hint=f"{repair} starts it again with its data kept (the images are on its {VOLUME} volume)")


def _describe_state(container) -> str:
    state = container.attrs.get("State") or {}
    if container.status == "exited":
        finished = str(state.get("FinishedAt", ""))[:19].replace("T", " ")  # RFC 3339, in UTC
        return f"exited with code {state.get('ExitCode')} at {finished} UTC"
    return container.status


def _has_volume(client: docker.DockerClient) -> bool:
    try:
        client.volumes.get(VOLUME)
        return True
    except docker.errors.NotFound:
        return False


def _answers(address: str) -> bool:
    direct_http.get(f"http://{address}/v2/", timeout=3)  # an error status raises
    return True


def lab_reference(address: str, image: str) -> str:
    """``image`` renamed into the lab registry (any registry host in it is dropped)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        image = rest
    return f"{address}/{image if ':' in image.rsplit('/', 1)[-1] else image + ':latest'}"


def push(source: docker.DockerClient, target: docker.DockerClient, address: str, image: str) -> str:
    """Side-load ``image`` from the ``source`` engine into the registry through ``target``.

    Returns:
        The image's reference in the lab registry.
    """
    reference = lab_reference(address, image)
    try:
        source.images.get(image)
    except docker.errors.ImageNotFound as err:
        raise LabError(f"image {image} is not on this machine's Docker engine",
                       hint="build or pull it first (`docker images` lists what is there)") from err
    loaded = target.images.load(b"".join(source.api.get_image(image)))
    loaded[0].tag(reference)
    repository, _, tag = reference.rpartition(":")
    for line in target.api.push(repository, tag=tag, stream=True, decode=True):
        if "error" in line:
            raise ProviderError(f"pushing {reference} failed: {line['error']}",
                                hint=f"is the registry up? {hints.command('registry.ls')}")
    return reference


def catalog(address: str, *, timeout: float = 5) -> dict[str, list[str]]:
    """``{repository: [tags]}`` of the registry at ``address``."""
    try:
        repositories = _get_json(f"http://{address}/v2/_catalog", timeout).get("repositories") or []
        return {r: sorted(_get_json(f"http://{address}/v2/{r}/tags/list", timeout).get("tags") or [])
                for r in repositories}
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ProviderError(f"the registry at {address} did not answer: {err}",
                            hint=f"is the lab up? {hints.command('lab.status')}") from err


def _get_json(url: str, timeout: float) -> dict:
    return json.loads(direct_http.get(url, timeout=timeout))
