"""Docker provider: every node is a container running its own Docker engine and sshd.

Nodes sit on a per-lab bridge network at static addresses and keep their engine
state in a per-node volume. Everything carries the lab's labels; the lab's spec
is kept as a label of its network, so any command can find the lab again.
"""

from __future__ import annotations

import ipaddress
import json

import docker
import docker.errors

from provision import doctor, hints, state
from provision.errors import ProviderError, SpecError, SubnetTaken
from provision.images import node as images
from provision.ledger import Ledger
from provision.plan import (
    CREATED,
    PAUSED,
    RUNNING,
    STOPPED,
    LabPlan,
    Machine,
    NodePlan,
    plan,
)
from provision.progress import Reporter
from provision.providers.base import Capabilities, FirstBoot, SSHTarget, ensure_nodes
from provision.providers.docker import load_balancer, names, node_container
from provision.providers.docker import runtime_profile as runtime
from provision.remote.engine_clients import host_client
from provision.spec import load as spec_load
from provision.spec import model as specs
from provision.spec import validation

AUTO_SUBNETS = ipaddress.ip_network("10.199.0.0/16")  # labs get the first free /24 in here
_STATES = {"running": RUNNING, "exited": STOPPED, "paused": PAUSED, "created": CREATED, "dead": STOPPED}


class DockerProvider:
    name = "docker"
    capabilities = Capabilities(boot_timeout=90, console=True, node_memory_mb=doctor.NODE_MEMORY_MB)

    def __init__(self, client: docker.DockerClient | None = None, lab: str | None = None):
        self._client, self.lab = client, lab
        self.image: str | None = None
        self.profile: runtime.RuntimeProfile | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = host_client(self.lab)
        return self._client

    def check(self) -> None:
        self.client.ping()

    def prepare(self, reporter: Reporter, *, image_method: str = "auto", mirror: str | None = None) -> None:
        """Make sure the node image exists and learn how node containers must run here."""
        self.image = images.ensure_node_image(self.client, reporter, method=image_method, mirror=mirror)
        self.profile = runtime.profile_for(self.client, self.image)
        reporter.result(f"runtime profile {self.profile.name}, cgroup v{self.profile.cgroup_version}", changed=False)

    # -- the lab's spec and network ---------------------------------------------------------

    def stored_spec(self, lab: str) -> specs.LabSpec | None:
        """The spec the lab was created with (provision.state), while its network exists
        (None: no such lab). A lab made by swarmdeck 0.1 kept it in its network's label:
        read there once, and recorded in the state folder from then on."""
        network = self._network(lab)
        if network is None:
            return None
        recorded = state.read_created_spec(lab)
        legacy = (network.attrs.get("Labels") or {}).get(names.SPEC)
        if recorded is None and legacy:
            recorded = spec_load.from_mapping(json.loads(legacy))
            state.write_created_spec(recorded)
        return recorded

    def resolve(self, spec: specs.LabSpec) -> LabPlan:
        network = self._network(spec.name)
        taken = self._taken_subnets(exclude=network.name if network else None)
        validation.validate(spec, taken_subnets=taken)
        if network is not None:
            return plan(spec, *self._network_facts(spec, network), shares_kernel=True)
        subnet = spec.network.subnet if spec.network.subnet != specs.AUTO else self._free_subnet(taken)
        return plan(spec, subnet, spec.network.mtu or self._default_mtu(), shares_kernel=True)

    def _network_facts(self, spec: specs.LabSpec, network) -> tuple[str, int]:
        subnet = network.attrs["IPAM"]["Config"][0]["Subnet"]
        mtu = int(network.attrs["Options"].get("com.docker.network.driver.mtu", 1500))
        if spec.network.subnet not in (specs.AUTO, subnet):
            raise SpecError([f"lab {spec.name!r} exists with subnet {subnet}, not {spec.network.subnet}"],
                            hint=f"run {hints.command('lab.down', lab=spec.name)} first, or pick another --lab")
        return subnet, mtu

    def _network(self, lab: str):
        found = self.client.networks.list(filters=names.lab_filter(lab, "network"))
        return self.client.networks.get(found[0].id) if found else None

    def _taken_subnets(self, exclude: str | None) -> dict[str, str]:
        taken = {}
        for network in self.client.networks.list():
            if network.name == exclude:
                continue
            try:
                attrs = self.client.networks.get(network.id).attrs
            except docker.errors.NotFound:
                continue  # removed since the list (another lab going down): its subnet is free
            for entry in (attrs.get("IPAM") or {}).get("Config") or []:
                if entry.get("Subnet") and ":" not in entry["Subnet"]:
                    taken[network.name] = entry["Subnet"]
        return taken

    def _free_subnet(self, taken: dict[str, str]) -> str:
        for candidate in AUTO_SUBNETS.subnets(new_prefix=specs.AUTO_PREFIX):
            if not validation.overlap_problems(str(candidate), taken):
                return str(candidate)
        raise ProviderError(f"no free /24 left in {AUTO_SUBNETS}", hint="set network.subnet in lab.yaml")

    def _default_mtu(self) -> int:
        try:
            bridge = self.client.networks.get("bridge")
            return int(bridge.attrs["Options"].get("com.docker.network.driver.mtu", 1500))
        except (docker.errors.NotFound, ValueError):
            return 1500

    def ensure_network(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        """The lab's bridge network on ``plan.subnet``; True when it was created now.

        Raises:
            SubnetTaken: the engine says the subnet overlaps another network's (one made
                since ``resolve`` chose it), naming that network when the engine lists it.
        """
        if self._network(plan.name) is not None:
            return False
        name = names.network_name(plan.name)
        subnet = ipaddress.ip_network(plan.subnet)
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=plan.subnet, gateway=str(subnet[1]))])
        (ledger or Ledger()).record(f"network {name}", lambda: self._remove_lab_network(plan.name))
        try:
            self.client.networks.create(
                name,
                driver="bridge",
                ipam=ipam,
                options={"com.docker.network.driver.mtu": str(plan.mtu)},
                labels={names.LAB: plan.name, names.KIND: "network"},
            )
        except docker.errors.APIError as err:
            text = str(err.explanation or err)
            if "overlaps" in text:  # "Pool overlaps with other one on this address space"
                holders = {n: s for n, s in self._taken_subnets(exclude=name).items()
                           if ipaddress.ip_network(s, strict=False).overlaps(subnet)}
                raise SubnetTaken(name, plan.subnet, holders) from err
            raise ProviderError(f"creating the lab network {name} ({plan.subnet}) failed: {text}") from err
        return True

    def _remove_lab_network(self, lab: str) -> None:
        for network in self.client.networks.list(filters=names.lab_filter(lab, "network")):
            node_container.ignore_missing(network.remove)

    # -- machines --------------------------------------------------------------------------

    def create(self, plan: LabPlan, first_boot: FirstBoot, reporter: Reporter,
               ledger: Ledger | None = None) -> list[Machine]:
        if self.image is None or self.profile is None:
            raise ProviderError("DockerProvider.create called before prepare()")
        ledger = ledger or Ledger()
        self.ensure_network(plan, ledger)  # made already by provision.machines.lab_network, under the subnet lock
        ensure_nodes(plan, lambda node: self._ensure_node(plan, node, first_boot, ledger), reporter, "node")
        return self.list(plan.name)

    def _ensure_node(self, plan: LabPlan, node: NodePlan, first_boot: FirstBoot, ledger: Ledger) -> str:
        container = self._container(plan.name, node.name) or self._create_container(plan, node, ledger)
        was = container.status
        if was == "running":
            return "running"
        if was == "paused":
            container.unpause()
            return "unpaused"
        if was == "created":  # never started (perhaps an interrupted run): (re)place first-boot files
            container.put_archive("/", node_container.tar_of(first_boot(node)))
        container.start()
        return "created" if was == "created" else "started"

    def _create_container(self, plan: LabPlan, node: NodePlan, ledger: Ledger):
        volume = names.volume_name(plan.name, node.name)
        if not self._has_volume(volume):  # one left by an earlier run is used, and stays on rollback
            ledger.record(f"volume {volume}", lambda: self._remove_volume(volume, plan.name))
        name = names.container_name(plan.name, node.name)
        ledger.record(f"container {name}", lambda: self._remove_container(name, plan.name))
        return node_container.create(self.client, self.profile, self.image, plan, node)  # type: ignore[arg-type]

    def _container(self, lab: str, node: str):
        return self._existing(names.container_name(lab, node))

    def _has_volume(self, name: str) -> bool:
        try:
            self.client.volumes.get(name)
            return True
        except docker.errors.NotFound:
            return False

    # A rollback removes a container or volume only if it carries this lab's label: never a
    # namesake that another lab or tool owns.
    def _remove_container(self, name: str, lab: str) -> None:
        container = self._existing(name)
        if container is not None and container.labels.get(names.LAB) == lab:
            node_container.ignore_missing(lambda: container.remove(force=True, v=True))

    def _remove_volume(self, name: str, lab: str) -> None:
        try:
            volume = self.client.volumes.get(name)
        except docker.errors.NotFound:
            return
        if (volume.attrs.get("Labels") or {}).get(names.LAB) == lab:
            node_container.ignore_missing(lambda: volume.remove(force=True))

    def list(self, lab: str) -> list[Machine]:
        found = self.client.containers.list(all=True, filters=names.lab_filter(lab, "node"))
        machines = [self._machine(c) for c in found]
        return sorted(machines, key=lambda m: m.index)

    def _machine(self, container) -> Machine:
        tags = container.labels
        return Machine(
            lab=tags[names.LAB], name=tags[names.NODE], role=tags[names.ROLE], index=int(tags[names.INDEX]),
            address=tags[node_container.ADDRESS], state=_STATES.get(container.status, container.status), provider=self.name,
            id=container.id,
        )

    def machine(self, lab: str, node: str) -> Machine:
        container = self._container(lab, node)
        if container is None:
            raise ProviderError(f"lab {lab!r} has no node container {names.container_name(lab, node)}",
                                hint=f"{hints.command('lab.status', lab=lab)} lists its nodes")
        return self._machine(container)

    def start(self, machine: Machine) -> None:
        container = self.client.containers.get(machine.id)
        container.unpause() if container.status == "paused" else container.start()

    def stop(self, machine: Machine) -> None:
        self.client.containers.get(machine.id).stop(timeout=30)  # the node's init stops dockerd cleanly

    def kill(self, machine: Machine) -> None:
        self.client.containers.get(machine.id).kill()  # SIGKILL: like pulling the power cord

    def pause(self, machine: Machine) -> None:
        """Freeze every process of the node (a hung machine: up, but silent)."""
        container = self.client.containers.get(machine.id)
        if container.status != "paused":
            container.pause()

    def remove(self, machine: Machine) -> None:
        """Remove one node: its container and its engine volume (lab.remove)."""
        node_container.ignore_missing(lambda: self.client.containers.get(machine.id).remove(force=True, v=True))
        node_container.ignore_missing(lambda: self.client.volumes.get(names.volume_name(machine.lab, machine.name)).remove(force=True))

    def destroy(self, lab: str) -> dict[str, int]:
        counts = {"containers": 0, "networks": 0, "volumes": 0}
        for container in self.client.containers.list(all=True, filters=names.lab_filter(lab)):
            node_container.ignore_missing(lambda: container.remove(force=True, v=True))
            counts["containers"] += 1
        for network in self.client.networks.list(filters=names.lab_filter(lab)):
            node_container.ignore_missing(network.remove)
            counts["networks"] += 1
        for volume in self.client.volumes.list(filters=names.lab_filter(lab)):
            node_container.ignore_missing(lambda: volume.remove(force=True))
            counts["volumes"] += 1
        return counts

    def labs(self) -> list[str]:
        found = self.client.networks.list(filters={"label": [f"{names.KIND}=network"]})
        return sorted({n.attrs["Labels"][names.LAB] for n in found if names.LAB in (n.attrs.get("Labels") or {})})

    def ssh_target(self, machine: Machine) -> SSHTarget:
        return SSHTarget(machine.address)

    def disconnect(self, machine: Machine) -> None:
        """Cut the node off the lab network (it keeps running: a network partition)."""
        self.client.networks.get(names.network_name(machine.lab)).disconnect(machine.id, force=True)

    def reconnect(self, machine: Machine) -> None:
        """Heal a partition: back on the lab network at the node's own address."""
        self.client.networks.get(names.network_name(machine.lab)).connect(
            machine.id, ipv4_address=machine.address, aliases=[machine.name])

    def console(self, machine: Machine, command: str) -> tuple[int, str]:
        """Run ``command`` on the node without the network (the provider's own channel)."""
        code, output = self.client.containers.get(machine.id).exec_run(["sh", "-c", command])
        return code, output.decode(errors="replace")

    def ensure_load_balancer(self, plan: LabPlan, ledger: Ledger | None = None) -> bool:
        """Run the lab's load balancer in front of the nodes (load_balancer.py); True when it changed."""
        name = load_balancer.container_name(plan.name)
        if self._existing(name) is None:
            (ledger or Ledger()).record(f"load balancer {name}", lambda: self._remove_container(name, plan.name))
        return load_balancer.ensure(self.client, self.image, plan)  # type: ignore[arg-type]

    def _existing(self, name: str):
        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            return None


