"""The lab's load balancer, where the docker provider's nodes have no routing mesh (a kernel
without IPVS): an HAProxy container on the lab network, in front of every node, as a cloud
load balancer would be (its address: provision.lab_services.entry_point.lb_address).

A running load balancer whose nodes changed (lab.add, lab.remove) gets the new configuration
and reloads it in place (SIGUSR2 to HAProxy's master): no request in flight is dropped, as a
cloud load balancer's target change drops none. The same reload applies a stack's routes
(a stack deployed on a lab without mesh: orchestrator/meshless.py), TCP forwards of its
published ports, read from the lab's state folder (``stacks/routes.json``).
"""

from __future__ import annotations

import docker
import docker.errors

from provision import state
from provision.errors import ProviderError
from provision.lab_services.entry_point import PORTS, lb_address
from provision.plan import LabPlan
from provision.providers.docker import names
from provision.providers.docker.node_container import read_file, tar_of
from provision.remote.node_files import File
from provision.render import render

CONFIG = "/etc/haproxy/swarmdeck.cfg"


def container_name(lab: str) -> str:
    return f"{lab}-lb"


def config(plan: LabPlan) -> str:
    """HAProxy's configuration: each entry-point port to the same port on every node, and each
    port a stack publishes (the routes ``stack.deploy`` records) the same way, at the TCP level."""
    routed = sorted({port for ports in state.read_routes(plan.name).values() for port in ports})
    return render("haproxy/haproxy.cfg.j2", ports=[p for p in PORTS if p not in routed], routes=routed,
                  nodes=plan.nodes)


def ensure(client: docker.DockerClient, image: str, plan: LabPlan) -> bool:
    """The load balancer runs with ``plan``'s nodes; True when anything changed."""
    name, wanted = container_name(plan.name), config(plan)
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        container = None
    if container is not None and container.status == "running":
        if read_file(container, CONFIG) == wanted:
            return False
        container.put_archive("/", tar_of([File(CONFIG, wanted.encode())]))
        container.kill(signal="SIGUSR2")
        return True
    if container is not None:
        container.remove(force=True)
    api, network = client.api, names.network_name(plan.name)
    endpoint = api.create_endpoint_config(aliases=["lb"], ipv4_address=lb_address(plan))
    try:
        created = api.create_container(
            image, ["haproxy", "-W", "-db", "-f", CONFIG], entrypoint=[], name=name,
            hostname="lb", labels={names.LAB: plan.name, names.KIND: "lb"},
            host_config=api.create_host_config(network_mode=network, restart_policy={"Name": "unless-stopped"}),
            networking_config=api.create_networking_config({network: endpoint}),
        )
        api.put_archive(created["Id"], "/", tar_of([File(CONFIG, wanted.encode())]))
        api.start(created["Id"])
    except docker.errors.APIError as err:
        raise ProviderError(f"the lab's load balancer {name} could not start: {err.explanation or err}") from err
    return True
