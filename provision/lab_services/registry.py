"""The lab's private registry: a ``registry`` container on the first manager.

It runs as the tutorials run it (restart always, port 5000, a volume for its
data). Offline, its image is made on the node itself from Debian's
docker-registry binary, so nothing is pulled. Every engine of the lab lists it
as an insecure registry (daemon.json), so plain HTTP is accepted, and as its
registry mirror, so Docker Hub's names (``nginx``: ``library/nginx:latest``)
are looked up there first: the tutorials' stand-ins are pushed under those names
(provision/images/tutorial.py).

Where the machine is online, ``registry.cache: true`` runs a second registry
beside it, ``registry-cache`` on port 5001: a pull-through cache of Docker Hub
(distribution's ``proxy.remoteurl``), the nodes' second mirror, so the first
pull of an image fetches it and every later one in the class is local. It has
to be a second registry: a proxy registry refuses pushes, and the lab registry
must take the stand-ins and the class's own images. The lab registry comes first
among the mirrors: what it holds under a Hub name wins. A proxy registry cannot
start without reaching Docker Hub (distribution issue #4038): offline, the cache
exits at start and lab.up says so; the lab registry serves Hub names alone.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import urllib.error
from dataclasses import dataclass, field
from typing import Mapping

import docker
import docker.errors
import requests

from provision import hints
from provision.errors import LabError, ProviderError, WaitTimeout
from provision.parallel import fan_out
from provision.paths import TEMPLATES
from provision.progress import Reporter
from provision.remote import direct_http
from provision.remote.host import Host, check
from provision.wait import wait_until

LOCAL_IMAGE = "swarmdeck/registry:2"
CONTAINER = "registry"
VOLUME = "registry-data"
BINARY = "/usr/bin/docker-registry"
CACHE_IMAGE = "swarmdeck/registry-cache:2"  # the same binary, with the CA certificates to reach Docker Hub
CACHE_CONTAINER = "registry-cache"
CACHE_VOLUME = "registry-cache-data"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Container:
    """A registry container on the first manager: the lab registry or the Docker Hub cache."""

    name: str
    volume: str
    image: str
    kind: str
    environment: Mapping[str, str] = field(default_factory=dict)


LAB_REGISTRY = Container(CONTAINER, VOLUME, LOCAL_IMAGE, "registry")


def cache_container(remote: str) -> Container:
    """The pull-through cache of ``remote``: distribution reads its settings from REGISTRY_*."""
    return Container(CACHE_CONTAINER, CACHE_VOLUME, CACHE_IMAGE, "registry-cache", {"REGISTRY_PROXY_REMOTEURL": remote})


def ensure_registry(client: docker.DockerClient, host: Host, address: str, image: str, reporter: Reporter, *,
                    timeout: float = 30) -> bool:
    """Make the registry answer at ``address`` (ADDR:PORT) within ``timeout`` seconds; return
    whether anything changed."""
    changed = _ensure_image(client, host, image or LOCAL_IMAGE, pull=bool(image))
    done = _ensure_container(client, dataclasses.replace(LAB_REGISTRY, image=image or LOCAL_IMAGE),
                             int(address.rsplit(":", 1)[1]))
    wait_until(lambda: _answers(address), timeout=timeout, describe=f"the registry at {address} to answer",
               hint=f"see `docker logs {CONTAINER}` on the first manager")
    changed = changed or bool(done)
    reporter.result(f"registry {address}" + (f" ({done})" if done else ""), changed)
    return changed


def ensure_cache(client: docker.DockerClient, host: Host, address: str, remote: str, reporter: Reporter, *,
                 timeout: float = 20) -> bool:
    """Run the pull-through cache of ``remote`` at ``address`` (ADDR:PORT) beside the lab
    registry; whether anything changed. When it does not answer, because it cannot reach
    ``remote`` (offline, it exits at start), this is a warning, not an error: the lab
    registry still serves Docker Hub's names, and the container starts by itself (restart
    policy always) once ``remote`` answers."""
    changed = _ensure_image(client, host, CACHE_IMAGE, pull=False)
    container = cache_container(remote)
    done = _ensure_container(client, container, int(address.rsplit(":", 1)[1]))

    def answered() -> bool:
        try:
            return _answers(address)
        except OSError:
            if client.containers.get(container.name).status != "running":  # it exited: no use waiting
                raise _ExitedAtStart(f"the {container.name} container exited at start") from None
            raise

    try:
        wait_until(answered, timeout=timeout, describe=f"the Docker Hub cache at {address} to answer")
    except (WaitTimeout, _ExitedAtStart):
        reporter.warn(f"the Docker Hub cache at {address} does not answer: {_last_log_line(client, container.name)}. "
                      f"A registry in proxy mode exits at start when it cannot reach {remote} (distribution "
                      "issue #4038), as on a machine offline: Docker Hub's names are served by the lab registry "
                      "alone (image.tutorial pushes the stand-ins there); the cache starts by itself once "
                      f"{remote} answers")
        return changed or bool(done)
    reporter.result(f"Docker Hub cache {address} of {remote}" + (f" ({done})" if done else ""), changed or bool(done))
    return changed or bool(done)


class _ExitedAtStart(LabError):
    """The cache's container stopped before it answered (a wait on it would be in vain)."""


def _last_log_line(client: docker.DockerClient, name: str) -> str:
    try:
        lines = client.containers.get(name).logs(tail=20).decode(errors="replace").strip().splitlines()
    except (docker.errors.DockerException, requests.RequestException) as err:
        return f"its logs cannot be read ({err})"
    fatal = [line for line in lines if "panic" in line or "level=fatal" in line or "error" in line.lower()]
    return (fatal or lines or ["it wrote nothing"])[-1][:300]


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
        check(host, build_command(image), hint="the node image must contain Debian's docker-registry package")
    return True


def build_command(image: str = LOCAL_IMAGE) -> str:
    """Shell that turns the node's docker-registry binary into a tiny image, offline; the
    cache's image also gets the node's CA certificates, to reach Docker Hub over HTTPS."""
    config = (TEMPLATES / "registry" / "config.yml").read_text()
    changes = [
        'ENTRYPOINT ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]',
        "EXPOSE 5000", 'VOLUME ["/var/lib/registry"]', "LABEL io.swarmdeck.kind=registry-image",
    ]
    change_args = " ".join(f"-c {shlex.quote(c)}" for c in changes)
    certificates = f"cp --parents -L {CA_BUNDLE} \"$d\"; " if image == CACHE_IMAGE else ""
    return (
        "set -e; d=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT; "
        f"for f in {BINARY} $(ldd {BINARY} | grep -o '/[^ ]*'); do cp --parents -L \"$f\" \"$d\"; done; "
        f"{certificates}"
        "mkdir -p \"$d/etc/docker/registry\" \"$d/var/lib/registry\" \"$d/tmp\"; "
        f"printf %s {shlex.quote(config)} > \"$d/etc/docker/registry/config.yml\"; "
        f"tar -C \"$d\" -c . | docker import {change_args} - {image} >/dev/null"
    )


def _ensure_container(client: docker.DockerClient, spec: Container, port: int) -> str:
    """Run the registry container and say what that took ("": nothing). A stopped or killed
    container is started again (one stopped by hand stays down whatever its restart policy);
    a new one mounts the same volume, so the images pushed before are kept either way."""
    try:
        container = client.containers.get(spec.name)
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
            spec.image, name=spec.name, detach=True, restart_policy={"Name": "always"},
            ports={"5000/tcp": port}, volumes={spec.volume: {"bind": "/var/lib/registry", "mode": "rw"}},
            environment=dict(spec.environment), labels={"io.swarmdeck.kind": spec.kind},
        )
    except docker.errors.APIError as err:
        key = "registry.port" if spec.name == CONTAINER else "registry.cache_port"
        raise ProviderError(f"the {spec.name} container could not start on port {port}: {err.explanation or err}",
                            hint=f"is that port taken on the first manager? set {key} in lab.yaml") from err
    return f"container created, with the {spec.volume} volume"


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


PUSH_WORKERS = 3  # pushes at once: the engine compresses each image's layers on one core


def push_many(source: docker.DockerClient, target: docker.DockerClient, address: str,
              names: Mapping[str, list[str]], reporter: Reporter) -> list[str]:
    """Side-load images from the ``source`` engine into the registry at ``address`` through
    the ``target`` engine: ``names`` maps each local tag to its names in the registry, parents
    first. The images travel in one ``docker save`` stream, so the layers they share go once;
    the first is pushed alone (its layers are the others' base), the others a few at a time
    (an engine uploads a layer that two pushes share once). The copies loaded into ``target``
    are removed afterwards: its engine pulls from the registry like every other node's.

    Returns:
        The references pushed.
    """
    with reporter.step(f"loading {len(names)} image(s) into the engine that pushes them"):
        target.images.load(_saved(source, list(names)))

    def push(local: str) -> list[str]:
        image, pushed = target.images.get(local), []
        for name in names[local]:
            reference = f"{address}/{name}"
            image.tag(reference)
            repository, _, tag = reference.rpartition(":")
            for line in target.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in line:
                    raise ProviderError(f"pushing {reference} failed: {line['error']}",
                                        hint=f"is the registry up? {hints.command('registry.ls')}")
            reporter.result(reference, changed=True)
            pushed.append(reference)
        return pushed

    first, *others = list(names)
    try:
        done = {first: push(first)}
        done.update(fan_out(others, push, name=lambda local: local, what="pushing images", workers=PUSH_WORKERS))
    finally:
        for local, references in names.items():
            for tag in [f"{address}/{name}" for name in references] + [local]:
                try:
                    target.images.remove(tag)
                except docker.errors.APIError:
                    pass  # not loaded, or in use by a container there: it stays
    return [reference for local in names for reference in done[local]]


def _saved(client: docker.DockerClient, tags: list[str]):
    """``docker save TAG...`` as a stream of chunks. The SDK saves one image per call; the
    engine API's /images/get takes several names and sends a layer they share once."""
    response = client.api._get(client.api._url("/images/get"), params={"names": tags}, stream=True)
    client.api._raise_for_status(response)
    return response.iter_content(chunk_size=1 << 20)


def config_digest(address: str, repository: str, tag: str, *, timeout: float = 5) -> str | None:
    """The digest of the image configuration that ``repository:tag`` names in the registry at
    ``address`` (an image's ID, for an image pushed by docker), or None without that tag."""
    try:
        manifest = json.loads(direct_http.get(f"http://{address}/v2/{repository}/manifests/{tag}", timeout,
                                              headers={"Accept": MANIFEST_TYPES}))
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise ProviderError(f"the registry at {address} refused {repository}:{tag}: {err}") from err
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ProviderError(f"the registry at {address} did not answer: {err}",
                            hint=f"is the lab up? {hints.command('lab.status')}") from err
    return (manifest.get("config") or {}).get("digest")


def image_labels(address: str, repository: str, tag: str, *, timeout: float = 5) -> dict[str, str]:
    """The labels of the image ``repository:tag`` in the registry at ``address`` ({} when
    it has none, or no such tag, or a manifest list)."""
    digest = config_digest(address, repository, tag, timeout=timeout)
    if digest is None:
        return {}
    try:
        config = json.loads(direct_http.get(f"http://{address}/v2/{repository}/blobs/{digest}", timeout))
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ProviderError(f"the registry at {address} did not answer: {err}") from err
    return dict((config.get("config") or {}).get("Labels") or {})


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
