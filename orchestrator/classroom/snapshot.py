"""A lab's node state right after class.up, and putting it back (class.reset).

A snapshot is taken with the lab's node containers frozen (``docker pause``: every node at the same
instant, crash-consistent, as a VM snapshot is): each node's engine volume (its /var/lib/docker:
Swarm's Raft state, images, containers, the registry's data) is copied into a snapshot volume on
the same engine (``LAB-NODE-snapshot``, carrying the lab's label, so lab.down removes it), and
each node's /etc/docker (daemon.json, engine TLS) is kept as a tar in the class's records (0600).

Restoring kills the lab's nodes (their state is thrown away anyway), copies every snapshot back
in one helper container (the nodes in parallel), puts /etc/docker back, and starts the nodes:
Swarm comes back with the managers, workers, node IDs and labels it had, and nothing a student
made after."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import docker.errors

from provision.errors import LabError
from provision.parallel import fan_out
from provision.plan import LabPlan
from provision.providers.docker import names
from provision.state import write_atomically

KIND = "snapshot"


def volume_name(lab: str, node: str) -> str:
    return f"{lab}-{node}-snapshot"


def _copy_all(client: docker.DockerClient, image: str, lab: str, pairs: list[tuple[str, str]], what: str) -> None:
    """Copy volume a into volume b (emptied first) for every (a, b), in parallel in one container."""
    volumes, script = {}, []
    for i, (source, target) in enumerate(pairs):
        volumes[source] = {"bind": f"/from{i}", "mode": "ro"}
        volumes[target] = {"bind": f"/to{i}", "mode": "rw"}
        script.append(f"(find /to{i} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} + && cp -a /from{i}/. /to{i}/ "
                      f"|| echo {target} >> /tmp/failed) &")
    # every copy runs to its end (a bare `wait`), then any that failed fails the container
    command = " ".join(script) + " wait; if [ -s /tmp/failed ]; then cat /tmp/failed >&2; exit 1; fi"
    try:
        client.containers.run(image, ["sh", "-c", command], entrypoint=[], volumes=volumes, remove=True,
                                       network_mode="none", labels={names.LAB: lab, names.KIND: "snapshot-copy"},
                                       stderr=True)
    except docker.errors.ContainerError as err:
        raise LabError(f"{what} of lab {lab} failed: {err.stderr.decode(errors='replace')[-300:] if err.stderr else err}",
                       hint="check the engine's disk space (docker system df)") from err


def _containers(client: docker.DockerClient, plan: LabPlan) -> dict[str, object]:
    return {n.name: client.containers.get(names.container_name(plan.name, n.name)) for n in plan.nodes}


def take(client: docker.DockerClient, image: str, plan: LabPlan, folder: Path) -> float:
    """Snapshot every node of ``plan``'s lab; returns the seconds the nodes were frozen."""
    nodes = _containers(client, plan)
    for node in plan.nodes:
        try:
            client.volumes.get(volume_name(plan.name, node.name))
        except docker.errors.NotFound:
            client.volumes.create(volume_name(plan.name, node.name), labels={names.LAB: plan.name, names.KIND: KIND})
    start = time.monotonic()
    for container in nodes.values():
        container.pause()
    try:
        for node, container in nodes.items():
            stream, _ = container.get_archive("/etc/docker")
            write_atomically(folder / f"{node}-etc-docker.tar", b"".join(stream), 0o600)
        _copy_all(client, image, plan.name, [(names.volume_name(plan.name, n), volume_name(plan.name, n)) for n in nodes],
                  "the snapshot")
    finally:
        for container in nodes.values():
            container.reload()
            if container.status == "paused":
                container.unpause()
    return time.monotonic() - start


def exists(client: docker.DockerClient, plan: LabPlan, folder: Path) -> bool:
    for node in plan.nodes:
        if not (folder / f"{node.name}-etc-docker.tar").is_file():
            return False
        try:
            client.volumes.get(volume_name(plan.name, node.name))
        except docker.errors.NotFound:
            return False
    return True


def restore(client: docker.DockerClient, image: str, plan: LabPlan, folder: Path) -> None:
    """Kill the lab's nodes, put every snapshot back, start them (in parallel)."""
    nodes = _containers(client, plan)
    fan_out(nodes.values(), _kill, name=lambda c: c.name, what="stopping the lab's nodes")
    _copy_all(client, image, plan.name, [(volume_name(plan.name, n), names.volume_name(plan.name, n)) for n in nodes],
              "restoring the snapshot")

    def put_back(node: str) -> None:
        container = nodes[node]
        container.put_archive("/etc", (folder / f"{node}-etc-docker.tar").read_bytes())
        container.start()

    fan_out(nodes, put_back, name=str, what="starting the lab's nodes")


def _kill(container) -> None:
    container.reload()
    if container.status == "paused":
        container.unpause()
    if container.status in ("running", "restarting"):
        try:
            container.kill()
        except docker.errors.APIError:  # it stopped meanwhile
            pass
    container.wait(timeout=30)
