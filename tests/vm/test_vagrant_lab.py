"""Provider vagrant: `vagrant up` with vagrant-libvirt on swarmdeck's locally built box makes
the machines of a 1-manager + 1-worker lab, which are set up and form a swarm; plain
`vagrant` commands on the top-level Vagrantfile see the same machines; a machine added later
joins the lab (and leaves it); lab.down leaves no domain or network."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from provision.paths import REPO
from provision.providers.libvirt import networks as libvirt_networks
from provision.providers.vagrant import commands as vagrant_commands
from provision.providers.vagrant import lab_file as vagrant_lab_file
from tests.labs import cli, libvirt_leftovers, new_lab_name, status_json, swarm_nodes

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def vagrant_folders(tmp_path_factory):
    """Vagrant's box store and machine records in this session's folders, not the user's."""
    if shutil.which("vagrant") is None:
        pytest.fail("vagrant is not installed; ./bootstrap.sh test installs vagrant and vagrant-libvirt")
    folder = tmp_path_factory.mktemp("vagrant")
    saved = {k: os.environ.get(k) for k in ("VAGRANT_HOME", vagrant_commands.DIR_ENV)}
    os.environ["VAGRANT_HOME"] = str(folder / "vagrant.d")
    os.environ[vagrant_commands.DIR_ENV] = str(folder / "machines")
    yield folder
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def vagrant_lab(vagrant_folders, libvirt_conn):
    name = new_lab_name("vg")
    try:
        result = cli("lab.up", "--lab", name, "--provider", "vagrant", "--managers", "1", "--workers", "1",
                     timeout=2400)
        yield name, result.stdout + result.stderr
    finally:
        cli("lab.down", "--lab", name, check=False)


def plain_vagrant(*args: str) -> str:
    """A vagrant command as a user would type it in the checkout (the environment names the lab JSON)."""
    folder = vagrant_commands.vagrant_dir()
    env = {**vagrant_commands.vagrant_env(), "SWARMDECK_LAB_JSON": str(folder / vagrant_lab_file.SPEC_JSON),
           "VAGRANT_DOTFILE_PATH": str(folder)}
    result = subprocess.run(["vagrant", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_vagrant_machines_from_the_local_box_form_a_swarm(vagrant_lab, libvirt_conn):
    name, output = vagrant_lab
    assert "Vagrant box swarmdeck/vm-" in output and "vagrant up manager1 worker1" in output
    status = status_json(name)
    assert status["provider"] == "vagrant" and status["entry_point"]["kind"] == "routing-mesh"
    swarm = swarm_nodes(name)
    assert {h: n["Status"]["State"] for h, n in swarm.items()} == {"manager1": "ready", "worker1": "ready"}
    leases = {lease["mac"]: lease["ipaddr"]
              for lease in libvirt_conn.networkLookupByName(libvirt_networks.network_name(name)).DHCPLeases()}
    for node in status["nodes"]:  # each on its reserved address, found by its MAC
        assert leases[libvirt_networks.mac_address(name, node["name"])] == node["address"]
        domain = libvirt_conn.lookupByName(f"{name}-vagrant-{node['name']}")
        assert domain.isActive()


def test_plain_vagrant_sees_the_same_machines(vagrant_lab):
    name, _output = vagrant_lab
    states = plain_vagrant("status", "--machine-readable")
    assert ",manager1,state,running" in states and ",worker1,state,running" in states
    nodes = plain_vagrant("ssh", "manager1", "-c", "sudo docker node ls --format '{{.Hostname}} {{.Status}}'")
    assert "manager1 Ready" in nodes and "worker1 Ready" in nodes


def test_a_machine_added_later_joins_and_leaves_again(vagrant_lab, libvirt_conn):
    name, _output = vagrant_lab
    cli("lab.add", "worker2", "--lab", name, timeout=1200)
    assert swarm_nodes(name)["worker2"]["Status"]["State"] == "ready"
    assert ",worker2,state,running" in plain_vagrant("status", "--machine-readable")
    cli("lab.remove", "worker2", "--lab", name, timeout=600)
    assert "worker2" not in swarm_nodes(name)
    assert "worker2" not in plain_vagrant("status", "--machine-readable")  # the Vagrantfile forgot it
    assert f"{name}-vagrant-worker2" not in [d.name() for d in libvirt_conn.listAllDomains(0)]


def test_down_leaves_no_domain_or_network(vagrant_lab, libvirt_conn):
    name, _output = vagrant_lab
    cli("lab.down", "--lab", name)
    assert libvirt_leftovers(libvirt_conn, name) == []
    assert not (vagrant_commands.vagrant_dir() / vagrant_lab_file.SPEC_JSON).exists()
