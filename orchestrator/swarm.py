"""Swarm primitives through the docker SDK: init, join, labels, read-modify-write updates.

Join tokens travel only in API request bodies, never on a command line and never
into a message: errors are redacted by LabError, and nothing here logs a token.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import docker
import docker.errors

from provision import hints
from provision.errors import SwarmError
from provision.spec.model import SwarmSpec
from provision.wait import NotYet, wait_until

SWARM_PORT = 2377


@dataclass(frozen=True, repr=False)
class JoinTokens:
    worker: str
    manager: str

    def __repr__(self) -> str:  # never show a token by accident
        return "JoinTokens(<redacted>)"

    def for_role(self, role: str) -> str:
        return self.manager if role == "manager" else self.worker


def swarm_info(client: docker.DockerClient) -> dict:
    return client.info().get("Swarm") or {}


def local_state(client: docker.DockerClient) -> str:
    """inactive | pending | active | error | locked."""
    return swarm_info(client).get("LocalNodeState", "inactive")


def heartbeat_ns(spec: SwarmSpec) -> int:
    return int(spec.dispatcher_heartbeat * 1_000_000_000)


def init(client: docker.DockerClient, address: str, spec: SwarmSpec) -> bool:
    """Initialise a swarm advertising ``address``; False when this node already leads one."""
    if local_state(client) == "active":
        return ensure_tuning(client, spec)
    try:
        client.swarm.init(
            advertise_addr=address, listen_addr=f"{address}:{SWARM_PORT}",
            dispatcher_heartbeat_period=heartbeat_ns(spec),
        )
    except docker.errors.APIError as err:
        raise SwarmError(f"swarm init on {address} failed: {err.explanation or err}") from err
    return True


def ensure_tuning(client: docker.DockerClient, spec: SwarmSpec) -> bool:
    """Apply the spec's dispatcher heartbeat to an existing swarm if it differs."""
    client.swarm.reload()
    dispatcher = client.swarm.attrs["Spec"].get("Dispatcher") or {}
    if dispatcher.get("HeartbeatPeriod") == heartbeat_ns(spec):
        return False
    _update(client, lambda swarm_spec: swarm_spec.setdefault("Dispatcher", {}).update(
        HeartbeatPeriod=heartbeat_ns(spec)))
    return True


def _update(client: docker.DockerClient, change: Callable[[dict], None] = lambda _spec: None, *,
            rotate_tokens: bool = False) -> None:
    """Write the swarm's spec back whole, as ``change`` edits it, with the version it was read at.

    Docker replaces the swarm's spec with the one an update sends, and resets what it leaves
    out; the SDK's ``client.swarm.update`` sends only its own arguments, so it would reset
    the heartbeat, Raft's ticks and the task history limit. As ``docker swarm update`` does,
    the spec just read is sent, changed.
    """
    client.swarm.reload()
    swarm_spec = copy.deepcopy(client.swarm.attrs["Spec"])
    change(swarm_spec)
    client.api.update_swarm(version=client.swarm.attrs["Version"]["Index"], swarm_spec=swarm_spec,
                            rotate_worker_token=rotate_tokens, rotate_manager_token=rotate_tokens)


def tokens(manager: docker.DockerClient) -> JoinTokens:
    manager.swarm.reload()
    found = manager.swarm.attrs["JoinTokens"]
    return JoinTokens(worker=found["Worker"], manager=found["Manager"])


def rotate_tokens(manager: docker.DockerClient) -> None:
    """New join tokens for both roles; the swarm's settings stay as they are."""
    _update(manager, rotate_tokens=True)


def set_autolock(manager: docker.DockerClient, enabled: bool) -> bool:
    """`docker swarm update --autolock=true|false`: with it on, a manager that restarts stays
    locked (its Raft keys encrypted) until `docker swarm unlock` gives the key. Whether it
    changed; the swarm's other settings stay as they are."""
    manager.swarm.reload()
    if bool((manager.swarm.attrs["Spec"].get("EncryptionConfig") or {}).get("AutoLockManagers")) == enabled:
        return False
    _update(manager, lambda spec: spec.setdefault("EncryptionConfig", {}).update(AutoLockManagers=enabled))
    return True


def unlock_key(manager: docker.DockerClient) -> str:
    """The swarm's unlock key (a secret: show it only where the user asked for it)."""
    return manager.api.get_unlock_key()["UnlockKey"]


def unlock(client: docker.DockerClient, key: str) -> None:
    """`docker swarm unlock` on a locked manager.

    Raises:
        SwarmError: Swarm refused the key (its message; the key itself is never in it).
    """
    try:
        client.api.unlock_swarm(key)
    except docker.errors.APIError as err:
        raise SwarmError(f"the swarm could not be unlocked: {err.explanation or err}") from err


def rotate_ca(manager: docker.DockerClient) -> None:
    """`docker swarm ca --rotate`: a new root CA; Swarm then reissues every node's certificate
    from it (``ca_rotation_done`` says when). The swarm's other settings stay as they are."""
    def change(spec: dict) -> None:
        ca_config = spec.setdefault("CAConfig", {})
        ca_config["ForceRotate"] = int(ca_config.get("ForceRotate") or 0) + 1

    _update(manager, change)


def ca_rotation_pending(manager: docker.DockerClient) -> list[str]:
    """The ready nodes (hostnames) whose certificate is not from the swarm's current root CA
    yet; empty once the rotation is done (what `docker swarm ca --rotate` waits for). A node
    that is down gets its new certificate when it is back."""
    manager.swarm.reload()
    cluster = manager.swarm.attrs.get("TLSInfo") or {}
    pending = ["(the root rotation)"] if manager.swarm.attrs.get("RootRotationInProgress") else []
    for node in manager.nodes.list():
        if (node.attrs.get("Status") or {}).get("State") != "ready":
            continue
        description = node.attrs.get("Description") or {}
        if (description.get("TLSInfo") or {}) != cluster:
            pending.append(description.get("Hostname", node.id[:12]))
    return pending


def member_ids(manager: docker.DockerClient) -> set[str]:
    return {node.id for node in manager.nodes.list()}


def join(client: docker.DockerClient, name: str, address: str, managers: Sequence[str], token: str,
         members: set[str]) -> bool:
    """Join this node to the swarm whose managers listen on ``managers`` (addresses);
    False when it is a member already.

    Raises:
        SwarmError: the node belongs to another swarm, or the join failed.
    """
    info = swarm_info(client)
    if info.get("LocalNodeState") == "active":
        if info.get("NodeID") in members:
            return False
        raise SwarmError(f"{name} is already part of another swarm",
                         hint=f"{hints.command('lab.up')} makes it leave that swarm and join the lab's "
                              f"(or `docker swarm leave --force` on {name})")
    try:
        client.swarm.join(
            remote_addrs=[f"{manager}:{SWARM_PORT}" for manager in managers], join_token=token,
            advertise_addr=address, listen_addr=f"{address}:{SWARM_PORT}",
        )
    except docker.errors.APIError as err:
        raise SwarmError(f"{name} could not join the swarm at {', '.join(managers)}: {err.explanation or err}",
                         hint=f"check that the nodes reach each other on 2377/tcp ({hints.command('lab.doctor')})") from err
    return True


def leave(client: docker.DockerClient) -> bool:
    """``docker swarm leave --force``; False when the node is in no swarm.

    Through the low-level API: the SDK's ``client.swarm`` first inspects the swarm, which
    fails on a manager whose swarm has no leader (the very node that must leave).
    """
    if local_state(client) == "inactive":
        return False
    client.api.leave_swarm(force=True)
    return True


def update_node(manager: docker.DockerClient, node_id: str, change: Callable[[dict], None]) -> bool:
    """Read the node's spec, let ``change`` edit it, and write it back if it differs.

    The SDK's ``Node.update`` replaces the whole spec, so it is always read first
    and written with the version it was read at.
    """
    node = manager.nodes.get(node_id)
    spec = dict(node.attrs["Spec"])
    wanted = {**spec, "Labels": dict(spec.get("Labels") or {})}
    change(wanted)
    if wanted == spec:
        return False
    node.update(wanted)
    return True


def ensure_labels(manager: docker.DockerClient, node_id: str, labels: dict[str, str]) -> bool:
    """Make sure the node carries ``labels`` (others are left alone)."""
    return update_node(manager, node_id, lambda spec: spec["Labels"].update(labels))


def add_missing_labels(manager: docker.DockerClient, node_id: str, labels: dict[str, str]) -> bool:
    """Give the node those of ``labels`` whose keys it has no value for."""
    def change(spec: dict) -> None:
        for key, value in labels.items():
            spec["Labels"].setdefault(key, value)

    return update_node(manager, node_id, change)


def remove_entry(manager: docker.DockerClient, node_id: str, timeout: float = 60) -> None:
    """Remove a node entry whose node is gone (it left, or is a stale copy of a node that rejoined).

    A manager entry that is a member of Raft is demoted first: Raft counts it against
    its majority until then, and Swarm refuses to remove it before. The demotion takes
    effect a moment later, so the removal is retried until Swarm accepts it. (After
    ``swarm init --force-new-cluster`` the old managers' entries are outside Raft:
    they are removed at once.)
    """
    entry = manager.nodes.get(node_id)
    if entry.attrs["Spec"].get("Role") == "manager" and entry.attrs.get("ManagerStatus"):
        update_node(manager, node_id, lambda spec: spec.update(Role="worker"))

    def removed() -> bool:
        try:
            manager.nodes.get(node_id).remove(force=True)
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as err:
            if "demoted" in str(err.explanation or err):  # Raft has not let it go yet
                raise NotYet(str(err.explanation or err)) from err
            raise SwarmError(f"the swarm did not remove node entry {node_id[:12]}: {err.explanation or err}") from err
        return True

    wait_until(removed, timeout=timeout, interval=0.5, describe=f"the swarm to remove node entry {node_id[:12]}",
               hint="Raft needs a majority of the managers up to change its membership")


VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
DEFAULT_OVERLAY_MTU = 1450  # what Swarm gives overlays when none is set
MTU_OPTION = "com.docker.network.driver.mtu"


def overlay_mtu(lab_mtu: int) -> int:
    """The largest overlay MTU whose VXLAN packets fit in the lab network."""
    return lab_mtu - VXLAN_OVERHEAD


def ensure_ingress_mtu(manager: docker.DockerClient, lab_mtu: int) -> bool:
    """Recreate the ingress network with an MTU that fits, when Swarm's default does not.

    Nested engines do not inherit the outer MTU: on a lab network below 1500
    the default ingress (1450) would silently drop large packets.
    """
    wanted = overlay_mtu(lab_mtu)
    ingress = next((n for n in manager.networks.list(filters={"name": "ingress"})
                    if n.attrs.get("Ingress")), None)
    current = int(((ingress.attrs.get("Options") or {}) if ingress else {}).get(MTU_OPTION, DEFAULT_OVERLAY_MTU))
    if current <= wanted:
        return False
    if ingress is not None:
        ingress.remove()
    manager.networks.create("ingress", driver="overlay", ingress=True, options={MTU_OPTION: str(wanted)})
    return True
