"""A class lab's state right after class.up, and putting a lab back to it in place (class.reset's
quick way).

``record`` notes, when class.up takes the snapshot: the swarm's node IDs, roles, availability
and labels, the cluster's spec and root CA, and what each node's engine holds (containers,
networks, volumes). ``restore_in_place`` puts a lab back through the engines' APIs when its
swarm is whole: every node up and Ready with the ID and role it had, a leader, the same root CA,
and each node's /etc/docker as the snapshot has it. Then it removes what the student made
(services, secrets, configs, networks, containers run by hand, volumes) and puts the node
labels, availability and swarm settings back: seconds, with no Raft election. Anything else
(a node killed, left or demoted, quorum lost, a rotated CA, an edited daemon.json) is not
mended here: ``restore_in_place`` says so and class.reset restores the snapshot instead
(snapshot.py)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import docker
import docker.errors

from orchestrator.clients import ClientPool
from orchestrator.views import reachable_manager
from provision.parallel import fan_out
from provision.plan import LabPlan, Machine
from provision.providers.docker import names
from provision.state import read_json, write_json
from provision.wait import wait_until

FILE = "baseline.json"
BUILTIN_NETWORKS = {"bridge", "host", "none", "docker_gwbridge", "ingress"}
CLUSTER_KEYS = ("Orchestration", "Raft", "Dispatcher", "CAConfig", "TaskDefaults", "EncryptionConfig")


def record(clients: ClientPool, plan: LabPlan, folder: Path) -> dict:
    """Note the formed lab's swarm and engines in ``folder`` (0600); returns what was noted."""
    manager = clients[plan.first_manager]
    swarm = manager.api.inspect_swarm()
    nodes = {n.attrs["Description"]["Hostname"]: _node_facts(n.attrs) for n in manager.nodes.list()}
    engines = fan_out(plan.nodes, lambda n: _engine_facts(clients[n]), name=lambda n: n.name,
                      what="noting the lab's engines")
    noted = {"cluster": {key: swarm["Spec"].get(key) for key in CLUSTER_KEYS},
             "root_ca": swarm.get("TLSInfo", {}).get("TrustRoot", ""), "nodes": nodes, "engines": engines}
    write_json(folder / FILE, noted)
    return noted


def read(folder: Path) -> dict | None:
    return read_json(folder / FILE)


def _node_facts(attrs: dict) -> dict:
    spec = attrs["Spec"]
    return {"id": attrs["ID"], "role": spec.get("Role"), "availability": spec.get("Availability"),
            "labels": spec.get("Labels") or {}}


def _engine_facts(client: docker.DockerClient) -> dict:
    return {"containers": sorted(c.name for c in client.containers.list(all=True)),
            "networks": sorted(n.name for n in client.networks.list()),
            "volumes": sorted(v.name for v in client.volumes.list())}


# -- in place ----------------------------------------------------------------------------------


def restore_in_place(clients: ClientPool, host: docker.DockerClient, machines: list[Machine], plan: LabPlan,
                     folder: Path) -> str | None:
    """Put the lab back as ``folder``'s baseline says, when its swarm is whole (see the module
    docstring). Returns None when done, else why it is not whole (nothing was changed then).
    ``host`` is the engine that runs the lab's node containers, ``machines`` its provider's list."""
    noted = read(folder)
    if noted is None:
        return "no baseline was noted when class.up took the snapshot"
    stopped = sorted({n.name for n in plan.nodes} - {m.name for m in machines if m.state == "running"})
    if stopped:
        return f"{', '.join(stopped)} not running"
    manager = reachable_manager(plan, clients, machines)  # answering for the swarm: there is a leader
    if manager is None:
        return "no manager answers for the swarm (no leader: quorum lost?)"
    why = _not_whole(manager, host, plan, noted, folder)
    if why:
        return why
    _remove_services(manager, clients, plan)
    # the containers run by hand go before the networks: one may hold an attachable overlay
    fan_out(plan.nodes, lambda n: _tidy_engine(clients[n], noted["engines"][n.name]), name=lambda n: n.name,
            what="removing what was made on the lab's engines")
    for secret in manager.secrets.list():
        secret.remove()
    for config in manager.configs.list():
        config.remove()
    asked = manager.info()["Name"]
    for network in manager.networks.list(filters={"scope": "swarm"}):
        if network.name not in noted["engines"][asked]["networks"] and network.name not in BUILTIN_NETWORKS:
            network.remove()
    for node in manager.nodes.list():
        wanted = noted["nodes"][node.attrs["Description"]["Hostname"]]
        spec = node.attrs["Spec"]
        if spec.get("Availability") != wanted["availability"] or (spec.get("Labels") or {}) != wanted["labels"]:
            node.update({**spec, "Availability": wanted["availability"], "Labels": wanted["labels"]})
    _cluster_settings(manager, noted["cluster"])
    return None


def _not_whole(manager: docker.DockerClient, host: docker.DockerClient, plan: LabPlan, noted: dict,
               folder: Path) -> str | None:
    swarm = manager.api.inspect_swarm()
    nodes = {n.attrs["Description"]["Hostname"]: n.attrs for n in manager.nodes.list()}
    if swarm.get("TLSInfo", {}).get("TrustRoot", "") != noted["root_ca"]:
        return "the swarm's root CA changed (a CA rotation)"
    if set(nodes) != set(noted["nodes"]):
        return f"the swarm's nodes are {', '.join(sorted(nodes))}, not {', '.join(sorted(noted['nodes']))}"
    for name, attrs in nodes.items():
        wanted, status = noted["nodes"][name], attrs.get("Status", {}).get("State")
        if attrs["ID"] != wanted["id"] or attrs["Spec"].get("Role") != wanted["role"]:
            return f"{name} is not the node it was (it left and joined again, or changed role)"
        if status != "ready":
            return f"{name} is {status}"
        if wanted["role"] == "manager" and (attrs.get("ManagerStatus") or {}).get("Reachability") != "reachable":
            return f"manager {name} is not reachable"
    for node in plan.nodes:
        stream, _ = host.containers.get(names.container_name(plan.name, node.name)).get_archive("/etc/docker")
        if tar_files(b"".join(stream)) != tar_files((folder / f"{node.name}-etc-docker.tar").read_bytes()):
            return f"{node.name}'s /etc/docker differs from the snapshot's (an engine reconfigured)"
    return None


def tar_files(data: bytes) -> dict[str, bytes]:
    """A tar's regular files by path, with their contents (modes and times left out)."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            if member.isfile():
                files[member.name] = archive.extractfile(member).read()
    return files


def _remove_services(manager: docker.DockerClient, clients: ClientPool, plan: LabPlan) -> None:
    """Every service removed, and its task containers gone from every node."""
    for service in manager.services.list():
        service.remove()

    def no_task_left() -> bool:
        return all(not clients[n].containers.list(all=True, filters={"label": "com.docker.swarm.task"})
                   for n in plan.nodes)

    wait_until(no_task_left, timeout=plan.scaled(60), interval=0.2,
               describe=f"the task containers of lab {plan.name}'s services to be gone")


def _tidy_engine(client: docker.DockerClient, noted: dict) -> None:
    """Containers, networks and volumes made on this engine since the baseline, removed."""
    for container in client.containers.list(all=True):
        if container.name not in noted["containers"]:
            container.remove(force=True, v=True)
    for network in client.networks.list(filters={"scope": "local"}):
        if network.name not in noted["networks"] and network.name not in BUILTIN_NETWORKS:
            network.remove()
    for volume in client.volumes.list():
        if volume.name not in noted["volumes"]:
            volume.remove(force=True)


def _cluster_settings(manager: docker.DockerClient, noted: dict) -> None:
    """The swarm's settings as noted (an autolock, a task history limit, a CA expiry ...)."""
    swarm = manager.api.inspect_swarm()
    if all(swarm["Spec"].get(key) == noted.get(key) for key in CLUSTER_KEYS):
        return
    spec = {**swarm["Spec"], **{key: value for key, value in noted.items() if value is not None}}
    manager.api.update_swarm(version=swarm["Version"]["Index"], swarm_spec=spec)
