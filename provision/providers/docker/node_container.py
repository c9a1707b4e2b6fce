"""A node of the docker provider: the container, its engine volume, its address on the lab
network, its labels, and the runtime profile's rights (see runtime_profile.py).

Also the small archive helpers the provider uses to put files into containers."""

from __future__ import annotations

import io
import tarfile
import time

import docker
import docker.errors

from provision.errors import ProviderError
from provision.plan import LabPlan, NodePlan
from provision.providers.docker import names
from provision.providers.docker.runtime_profile import RuntimeProfile
from provision.remote.node_files import File
from provision.spec.model import LimitsSpec, memory_bytes

ADDRESS = f"{names.PREFIX}.address"


def create(client: docker.DockerClient, profile: RuntimeProfile, image: str, plan: LabPlan, node: NodePlan):
    """Create (not start) the container of ``node``, with its engine volume (made if missing)."""
    name = names.container_name(plan.name, node.name)
    node_labels = {
        names.LAB: plan.name, names.KIND: "node", names.NODE: node.name, names.ROLE: node.role,
        names.INDEX: str(node.index), ADDRESS: node.address,
    }
    volume = names.volume_name(plan.name, node.name)
    try:
        client.volumes.get(volume)
    except docker.errors.NotFound:
        client.volumes.create(volume, labels={names.LAB: plan.name, names.KIND: "volume"})
    api = client.api
    network = names.network_name(plan.name)
    host_config = profile.host_config(
        api, {volume: {"bind": "/var/lib/docker", "mode": "rw"}},  # the node's engine state survives restarts
        network_mode=network, **limit_options(plan.spec.limits),
    )
    endpoint = api.create_endpoint_config(aliases=[node.name], ipv4_address=node.address)
    try:
        created = api.create_container(
            image, name=name, hostname=node.name, labels=node_labels, detach=True,
            host_config=host_config, networking_config=api.create_networking_config({network: endpoint}),
        )
    except docker.errors.APIError as err:
        raise ProviderError(f"creating container {name} failed: {err.explanation or err}") from err
    return client.containers.get(created["Id"])


def limit_options(limits: LimitsSpec) -> dict:
    """``create_host_config`` keywords for a node's limits: a memory limit without swap on top,
    a CPU quota (NanoCpus: ``--cpus``), a pids limit. None of them: {}."""
    options: dict = {}
    memory = memory_bytes(limits.memory)
    if memory:
        options.update(mem_limit=memory, memswap_limit=memory)
    if limits.cpus:
        options["nano_cpus"] = int(limits.cpus * 1e9)
    if limits.pids:
        options["pids_limit"] = limits.pids
    return options


def tar_of(files: list[File]) -> bytes:
    """An archive of ``files`` for put_archive at "/" (the engine creates missing folders)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for file in files:
            info = tarfile.TarInfo(file.path.lstrip("/"))
            info.size, info.mode, info.mtime = len(file.content), file.mode, int(time.time())
            archive.addfile(info, io.BytesIO(file.content))
    return buffer.getvalue()


def read_file(container, path: str) -> str | None:
    """A text file of a container, or None when it has none."""
    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.extractfile(archive.getmembers()[0])
        return member.read().decode() if member else None


def ignore_missing(action) -> None:
    try:
        action()
    except docker.errors.NotFound:
        pass
