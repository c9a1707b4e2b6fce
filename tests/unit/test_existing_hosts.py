"""Existing hosts and Vagrant machines: the inventory in the spec, adopting a machine (host
key learnt on first use), the engine installed and its systemd units fixed by host setup,
the ssh provider's plan, and how the vagrant provider reads Vagrant's answers."""

import json
import subprocess

import pytest

from provision import plan as machine
from provision.errors import ProviderError, SetupError, SpecError
from provision.paths import lab_dir
from provision.progress import Reporter
from provision.providers.ssh import provider as ssh_provider
from provision.providers.vagrant import commands as vagrant_commands
from provision.providers.vagrant import lab_file as vagrant_lab_file
from provision.providers.vagrant import provider as vagrant_provider
from provision.remote import adopt, keys
from provision.remote.host import Result
from provision.setup import engine_package, engine_service, run_setup, steps
from provision.spec import load as spec_load
from provision.spec import validation
from tests.unit.fakes import FakeHost

HOSTS = {"manager1": {"address": "192.0.2.10", "user": "admin", "key": "/keys/id"}, "worker1": {"address": "192.0.2.11"}}


def ssh_spec(**overrides):
    raw = {"name": "ext", "provider": "ssh", "managers": 1, "workers": 1, "hosts": HOSTS, **overrides}
    return spec_load.load_spec(None, {}, raw)


def test_the_inventory_is_read_with_defaults_and_round_trips():
    spec = ssh_spec()
    assert spec.hosts["manager1"].user == "admin" and spec.hosts["manager1"].key == "/keys/id"
    assert spec.hosts["worker1"].user == "root" and spec.hosts["worker1"].port == 22
    assert spec_load.from_mapping(json.loads(json.dumps(spec_load.to_mapping(spec)))) == spec


def test_inventory_problems_are_listed_together():
    hosts = {"manager1": {"address": "192.0.2.10", "user": "Bad User", "port": 70000},
             "stray": {"address": "192.0.2.10"}}
    with pytest.raises(SpecError) as err:
        validation.validate(ssh_spec(hosts=hosts))
    text = str(err.value)
    for expected in ("node 'worker1' has no entry in hosts", "hosts has 'stray'", "192.0.2.10 is given to more",
                     "SSH port 70000", "invalid user name 'Bad User'"):
        assert expected in text


def test_hosts_belong_to_provider_ssh_only():
    with pytest.raises(SpecError, match="only provider ssh uses them"):
        validation.validate(ssh_spec(provider="docker"))


def test_virtualbox_needs_a_named_box():
    raw = {"name": "v", "provider": "vagrant", "vagrant": {"provider": "virtualbox"}}
    with pytest.raises(SpecError, match="name a box in vagrant.box"):
        spec_load.load_spec(None, {}, raw)
    with pytest.raises(SpecError, match="name a box in vagrant.box"):
        validation.validate(spec_load.from_mapping(raw))


def test_the_ssh_plan_takes_the_inventory_addresses():
    plan = ssh_provider.SSHProvider().resolve(ssh_spec())
    assert {n.name: n.address for n in plan.nodes} == {"manager1": "192.0.2.10", "worker1": "192.0.2.11"}
    with pytest.raises(SpecError, match="cannot be applied to existing machines"):
        ssh_provider.SSHProvider().resolve(ssh_spec(network={"subnet": "10.9.9.0/24"}))


def test_an_unreachable_host_is_listed_as_stopped(monkeypatch):
    provider = ssh_provider.SSHProvider()
    spec = ssh_spec(hosts={"manager1": {"address": "127.0.0.1", "port": 1}, "worker1": {"address": "127.0.0.2",
                                                                                        "port": 1}})
    lab_dir("ext").mkdir(parents=True)  # a lab adopted by swarmdeck 0.1: its spec in ssh.json, no provider record
    (lab_dir("ext") / "ssh.json").write_text(json.dumps(spec_load.to_mapping(spec)))
    assert [(m.name, m.state) for m in provider.list("ext")] == [("manager1", "stopped"), ("worker1", "stopped")]
    assert provider.labs() == ["ext"]


def test_host_keys_are_learnt_once_then_checked(monkeypatch, tmp_path):
    first, second = (keys.ensure_keypair(tmp_path / n, "x").public_line for n in ("one", "two"))
    offered = {"key": " ".join(first.split()[:2])}
    monkeypatch.setattr(adopt, "scan_host_key", lambda address, port=22, timeout=10: offered["key"])
    fingerprint, learnt = adopt.trust_host_key("ext", "manager1", "192.0.2.10")
    assert learnt and fingerprint.startswith("SHA256:")
    assert keys.read_known_hosts("ext") == {"manager1": ("192.0.2.10", offered["key"])}
    assert adopt.trust_host_key("ext", "manager1", "192.0.2.10")[1] is False
    offered["key"] = " ".join(second.split()[:2])
    with pytest.raises(SetupError, match="host key of manager1 .* changed"):
        adopt.trust_host_key("ext", "manager1", "192.0.2.10")


def test_recording_one_host_keeps_the_others():
    keys.record_host_key("ext", "a", "10.0.0.1", "ssh-ed25519 AAAA1")
    keys.record_host_key("ext", "b", "10.0.0.2", "ssh-ed25519 AAAA2")
    keys.record_host_key("ext", "a", "10.0.0.3", "ssh-ed25519 AAAA3")
    assert keys.read_known_hosts("ext") == {"a": ("10.0.0.3", "ssh-ed25519 AAAA3"), "b": ("10.0.0.2", "ssh-ed25519 AAAA2")}


def test_the_user_key_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(SetupError, match="none of ~/.ssh"):
        adopt.user_key("")
    with pytest.raises(SetupError, match="does not exist"):
        adopt.user_key(str(tmp_path / "nope"))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("k")
    assert adopt.user_key("") == tmp_path / ".ssh" / "id_rsa"


def test_sudo_without_a_password_is_required_for_a_non_root_user():
    host = FakeHost(responses={r"^sudo -n true$": Result("sudo: a password is required", 1)})
    with pytest.raises(SetupError, match="cannot use sudo without a password"):
        adopt._authorize_for_root(host, "admin", "ssh-ed25519 AAAA lab")
    host = FakeHost()
    adopt._authorize_for_root(host, "admin", "ssh-ed25519 AAAA lab")
    assert host.commands[-1].startswith("sudo -n sh -c ") and "/root/.ssh/authorized_keys" in host.commands[-1]


def test_the_engine_is_installed_only_where_missing():
    missing = FakeHost(responses={r"^command -v dockerd": Result("", 1), r"^test -x /usr/bin/docker-registry": Result("", 1)})
    assert engine_package.ensure_engine_package(missing, registry=True) is True
    install = next(c for c in missing.commands if "apt-get install" in c)
    assert "docker.io" in install and "apparmor" in install and "docker-registry" in install
    present = FakeHost()
    assert engine_package.ensure_engine_package(present, registry=True) is False
    assert not present.ran("apt-get")


def test_no_apt_means_a_clear_error():
    host = FakeHost(responses={r"^command -v dockerd": Result("", 1), r"^command -v apt-get": Result("", 1)})
    with pytest.raises(SetupError, match="no Docker engine and no apt-get"):
        engine_package.ensure_engine_package(host)


def test_systemd_hosts_get_the_engine_drop_ins_once():
    host = FakeHost()
    assert engine_service.ensure_engine_service(host) is True
    assert set(engine_service.SYSTEMD_DROPINS) <= set(host.files) and host.ran("systemctl daemon-reload")
    assert engine_service.ensure_engine_service(host) is False
    runit = FakeHost(responses={r"^test -d /run/systemd/system$": Result("", 1)})
    assert engine_service.ensure_engine_service(runit) is False and not runit.files


def test_only_the_registry_node_wants_the_registry_package():
    plan = machine.plan(spec_load.load_spec(None, {}, {"name": "t1", "managers": 2, "workers": 0}), "10.9.0.0/24", 1500)
    titles = [title for title, _ in steps(plan)]
    assert titles.index("engine package") < titles.index("engine service") < titles.index("engine config")
    hosts = {n.name: FakeHost(name=n.name, responses={r"^test -x /usr/bin/docker-registry": Result("", 1)})
             for n in plan.nodes}
    run_setup(plan, hosts, Reporter())
    assert hosts["manager1"].ran("docker-registry") and hosts["manager1"].ran("apt-get install")
    assert not hosts["manager2"].ran("apt-get install")


def test_vagrant_errors_in_machine_readable_output_are_raised(monkeypatch, tmp_path):
    monkeypatch.setenv(vagrant_commands.DIR_ENV, str(tmp_path))
    (tmp_path / vagrant_lab_file.SPEC_JSON).write_text(json.dumps({"lab": "v"}))
    provider = vagrant_provider.VagrantProvider()
    error = "1,,error-exit,Vagrant::Errors::VagrantfileLoadError,There was an error loading a Vagrantfile%!(VAGRANT_COMMA) see"
    monkeypatch.setattr(provider, "_run", lambda lab, what, call: error)
    with pytest.raises(ProviderError, match="error loading a Vagrantfile, see"):
        provider._status("v")
    states = "1,manager1,provider-name,libvirt\n1,manager1,state,running\n1,worker1,state,not_created\n"
    monkeypatch.setattr(provider, "_run", lambda lab, what, call: states)
    assert provider._status("v") == {"manager1": "running", "worker1": "not_created"}


def test_a_failed_vagrant_command_reports_its_own_output(monkeypatch, tmp_path):
    monkeypatch.setenv(vagrant_commands.DIR_ENV, str(tmp_path))
    provider = vagrant_provider.VagrantProvider()

    def fails(client):
        with open(lab_dir("v") / "vagrant.log", "a") as log:
            log.write("Bringing machine 'manager1' up...\nError while creating domain: no storage pool\n")
        raise subprocess.CalledProcessError(1, ["vagrant", "up"])

    monkeypatch.setattr(vagrant_commands, "vagrant_lib", lambda: pytest.importorskip("vagrant"))
    with pytest.raises(ProviderError, match="(?s)`vagrant up` failed.*no storage pool"):
        provider._run("v", "up", fails)
