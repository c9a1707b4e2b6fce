"""A libvirt lab of 3 VMs (1 manager + 2 workers) from the offline VM image, made while a
container lab idles beside it (as on a user's machine): it forms a swarm with its demo
images (engine timeouts follow the emulated VMs' pace), the routing mesh answers on every
node (these kernels have IPVS), an encrypted overlay carries only ESP between two VMs (these
kernels have ESP, which container nodes here lack), a worker's hard power-off is survived,
and lab.down leaves no domain, volume or network."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from provision.paths import lab_dir
from provision.providers.libvirt import domains as libvirt_domains
from provision.providers.libvirt import networks as libvirt_networks
from provision.wait import wait_until
from tests.labs import (
    cli,
    leader_client,
    libvirt_leftovers,
    new_lab_name,
    status_json,
    swarm_nodes,
)

pytestmark = pytest.mark.vm
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def idle_lab(engine):
    """A container lab that idles while the VM lab is made and used."""
    name = new_lab_name("idle")
    try:
        cli("lab.up", "--lab", name, "--managers", "1", "--workers", "2")
        yield name
    finally:
        cli("lab.down", "--lab", name, check=False)


@pytest.fixture(scope="module")
def vm_lab(libvirt_conn, idle_lab):
    name = new_lab_name("vm")
    try:
        made = cli("lab.up", "--lab", name, "--provider", "libvirt", "--managers", "1", "--workers", "2",
                   timeout=1800)
        assert "step failed" not in made.stderr, made.stderr  # demo images and entry point included
        yield name
    finally:
        cli("lab.down", "--lab", name, check=False)


def test_the_demo_images_are_in_the_vm_labs_registry_and_image_demo_sees_the_lab_up(vm_lab):
    assert "swarmdeck/web: 1, 2, 3" in cli("registry.ls", "--lab", vm_lab).stdout
    pushed = cli("image.demo", "--lab", vm_lab)
    registry = status_json(vm_lab)["registry"]
    assert pushed.stdout.split() == [f"{registry}/swarmdeck/web:{v}" for v in (1, 2, 3)]
    assert "is not up" not in pushed.stderr


def test_the_container_lab_beside_it_stayed_ready(idle_lab):
    assert {n["state"] for n in status_json(idle_lab)["nodes"]} == {"ready"}


def get(url: str, timeout: float = 5) -> str:
    with _direct.open(url, timeout=timeout) as response:
        return response.read().decode()


def test_three_vms_form_a_swarm_on_their_reserved_addresses(vm_lab, libvirt_conn):
    status = status_json(vm_lab)
    assert status["provider"] == "libvirt" and status["entry_point"]["kind"] == "routing-mesh"
    nodes = {n["name"]: n for n in status["nodes"]}
    assert sorted(nodes) == ["manager1", "worker1", "worker2"]
    assert all(n["state"] == "ready" and n["machine"] == "running" for n in nodes.values())
    assert [n["name"] for n in nodes.values() if n["leader"]] == ["manager1"]
    leases = {lease["hostname"]: lease["ipaddr"]
              for lease in libvirt_conn.networkLookupByName(libvirt_networks.network_name(vm_lab)).DHCPLeases()}
    assert {name: leases.get(name) for name in nodes} == {name: n["address"] for name, n in nodes.items()}
    for name in nodes:
        domain = libvirt_conn.lookupByName(libvirt_domains.domain_name(vm_lab, name))
        assert domain.isActive()
        assert (lab_dir(vm_lab) / "console" / f"{name}.log").stat().st_size > 0  # the serial console is logged


def test_the_routing_mesh_answers_on_every_node(vm_lab):
    cli("service.create", "--name", "web", "swarmdeck/web:1", "--replicas", "2", "--publish", "8080:80", "--lab", vm_lab)
    addresses = {n["name"]: n["address"] for n in status_json(vm_lab)["nodes"]}
    for name, address in addresses.items():
        answer = wait_until(lambda: get(f"http://{address}:8080/"), timeout=180, interval=1,
                            describe=f"the routing mesh on {name}")
        assert "swarmdeck-web version=1" in answer


def test_an_encrypted_overlay_carries_only_esp_between_two_vms(vm_lab):
    result = cli("demo.encrypted-overlay", "--lab", vm_lab, check=False, timeout=1800)
    saved = sorted((lab_dir(vm_lab) / "reports").glob("encrypted-overlay-2*.json"))
    assert saved, f"the demo saved no report (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    report = json.loads(saved[-1].read_text())
    assert result.returncode == 0 and report["verdict"] == "pass", result.stderr
    figures = report["figures"]
    assert figures["plain overlay: VXLAN packets in the clear"] > 0 and figures["plain overlay: packets showing the marker"] > 0
    assert figures["encrypted overlay: ESP packets"] > 0 and figures["encrypted overlay: packets showing the marker"] == 0
    assert figures["encrypted overlay: requests answered"] > 0
    for node in ("worker1", "worker2"):  # the image loads no esp4 at boot: Docker's IPsec states did
        assert cli("lab.ssh", node, "--lab", vm_lab, "--command", "test -d /sys/module/esp4", check=False).returncode == 0
    client = leader_client(vm_lab)
    try:
        demo = {"label": "io.swarmdeck.demo"}  # the demo's networks and services are gone
        assert client.networks.list(filters=demo) == [] and client.services.list(filters=demo) == []
    finally:
        client.close()


def test_a_worker_power_off_is_survived(vm_lab):
    manager = next(n["address"] for n in status_json(vm_lab)["nodes"] if n["name"] == "manager1")
    results: list[bool] = []
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            try:
                results.append("swarmdeck-web" in get(f"http://{manager}:8080/", timeout=2))
            except OSError:
                results.append(False)
            time.sleep(0.2)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        cli("lab.kill", "worker1", "--lab", vm_lab)
        wait_until(lambda: swarm_nodes(vm_lab)["worker1"]["Status"]["State"] == "down", timeout=180, interval=2,
                   describe="the swarm to see worker1 down")
        wait_until(lambda: _running_web_tasks(vm_lab, avoid="worker1") == 2, timeout=240, interval=2,
                   describe="both web tasks running on the other nodes")
        time.sleep(5)
    finally:
        stop.set()
        prober.join(timeout=5)
    assert sum(results) > len(results) // 2 and results[-5:] == [True] * 5, results
    cli("lab.start", "worker1", "--lab", vm_lab, timeout=900)
    wait_until(lambda: swarm_nodes(vm_lab)["worker1"]["Status"]["State"] == "ready", timeout=300, interval=2,
               describe="worker1 ready again")
    address = next(n["address"] for n in status_json(vm_lab)["nodes"] if n["name"] == "worker1")
    assert address == status_json(vm_lab)["nodes"][1]["address"]


def test_down_leaves_no_domain_volume_or_network(vm_lab, libvirt_conn):
    cli("lab.down", "--lab", vm_lab)
    assert libvirt_leftovers(libvirt_conn, vm_lab) == []


def _running_web_tasks(lab: str, avoid: str) -> int:
    client = leader_client(lab)
    try:
        hostnames = {n.id: n.attrs["Description"]["Hostname"] for n in client.nodes.list()}
        return sum(1 for t in client.services.get("web").tasks()
                   if t["Status"]["State"] == "running" and t["DesiredState"] == "running"
                   and hostnames.get(t.get("NodeID")) != avoid)
    finally:
        client.close()
