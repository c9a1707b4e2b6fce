import json

from provision import plan as machine
from provision.remote import node_files
from provision.remote.host import Result
from provision.setup import engine_config as engine
from provision.setup import firewall, hostname, hosts_file, ssh_keys
from provision.spec import load as spec_load
from tests.unit.fakes import FakeHost


def lab_plan(**overrides):
    spec = spec_load.load_spec(None, {}, {"name": "t1", **overrides})
    return machine.plan(spec, "10.199.7.0/24", 1450)


def test_hosts_block_is_appended_then_replaced_then_left_alone():
    entries = {"manager1": "10.0.0.10", "worker1": "10.0.0.11"}
    host = FakeHost(files={"/etc/hosts": "127.0.0.1\tlocalhost\n"})
    assert hosts_file.ensure_hosts_block(host, "t1", entries) is True
    text = host.files["/etc/hosts"]
    assert text.startswith("127.0.0.1\tlocalhost\n# BEGIN swarmdeck lab t1\n")
    assert "10.0.0.10\tmanager1\n10.0.0.11\tworker1\n# END swarmdeck lab t1\n" in text
    assert hosts_file.ensure_hosts_block(host, "t1", entries) is False
    entries["worker1"] = "10.0.0.99"
    assert hosts_file.ensure_hosts_block(host, "t1", entries) is True
    assert host.files["/etc/hosts"].count("BEGIN swarmdeck lab t1") == 1
    assert "10.0.0.99\tworker1" in host.files["/etc/hosts"]


def test_hosts_blocks_of_two_labs_coexist():
    text = hosts_file.with_block("", "a", {"n": "1.1.1.1"})
    text = hosts_file.with_block(text, "b", {"n": "2.2.2.2"})
    assert hosts_file.with_block(text, "a", {"n": "1.1.1.1"}) == text
    assert "BEGIN swarmdeck lab a" in text and "BEGIN swarmdeck lab b" in text


def test_engine_config_restarts_only_when_a_file_changed():
    plan = lab_plan()
    node = plan.node("manager2")
    files = node_files.engine_files(plan, node)
    host = FakeHost(name="manager2")
    assert engine.ensure_engine_config(host, files) is True
    assert host.ran("sv -w 60 restart /etc/service/docker")
    restarts = sum("restart" in c for c in host.commands)
    assert engine.ensure_engine_config(host, files) is False
    assert sum("restart" in c for c in host.commands) == restarts


def test_daemon_json_has_tls_registry_and_mtu_and_no_key_dockerd_rejects():
    plan = lab_plan()
    config_json = json.loads(node_files.daemon_config(plan, plan.node("worker1")))
    assert config_json["insecure-registries"] == ["10.199.7.10:5000"]
    # Docker Hub's names (nginx: docker.io/library/nginx) are looked up in the lab registry first
    assert config_json["registry-mirrors"] == ["http://10.199.7.10:5000"]
    assert config_json["hosts"] == ["unix:///var/run/docker.sock", "tcp://10.199.7.13:2376"]
    assert config_json["tlsverify"] is True and config_json["mtu"] == 1450
    assert not [key for key in config_json if key.startswith("swarm-raft")]


def test_daemon_json_without_registry_lists_none():
    plan = lab_plan(registry={"enabled": False})
    assert plan.registry is None
    config_json = json.loads(node_files.daemon_config(plan, plan.first_manager))
    assert "insecure-registries" not in config_json and "registry-mirrors" not in config_json


def test_daemon_json_lists_the_docker_hub_cache_after_the_lab_registry():
    plan = lab_plan(registry={"cache": True, "cache_port": 5002})
    config_json = json.loads(node_files.daemon_config(plan, plan.node("worker1")))
    assert config_json["insecure-registries"] == ["10.199.7.10:5000", "10.199.7.10:5002"]
    assert config_json["registry-mirrors"] == ["http://10.199.7.10:5000", "http://10.199.7.10:5002"]


def test_hostname_and_authorized_key_are_idempotent():
    host = FakeHost(responses={r"^hostname$": Result("old\n", 0), r"grep -qxF": Result("", 1)})
    assert hostname.ensure_hostname(host, "manager1") is True
    assert host.ran("hostname manager1 && echo manager1 > /etc/hostname")
    assert ssh_keys.ensure_authorized_key(host, "ssh-ed25519 AAAA x") is True
    same = FakeHost(responses={r"^hostname$": Result("manager1\n", 0), r"grep -qxF": Result("", 0)})
    assert hostname.ensure_hostname(same, "manager1") is False
    assert ssh_keys.ensure_authorized_key(same, "ssh-ed25519 AAAA x") is False


def test_firewall_skipped_without_one_and_opened_with_iptables():
    none = FakeHost(responses={"ufw": Result("none\n", 0)})
    assert firewall.ensure_lab_ports(none) is False
    closed = FakeHost(responses={"ufw": Result("iptables\n", 0), r"iptables -C": Result("", 1)})
    assert firewall.ensure_lab_ports(closed) is True
    for rule in ("-p tcp --dport 2377", "-p tcp --dport 7946", "-p udp --dport 7946", "-p udp --dport 4789",
                 "-p tcp --dport 2376"):
        assert closed.ran(f"iptables -I INPUT {rule} -j ACCEPT")
    opened = FakeHost(responses={"ufw": Result("iptables\n", 0), r"iptables -C": Result("", 0)})
    assert firewall.ensure_lab_ports(opened) is False


def test_firewall_commands_per_backend():
    assert firewall.open_commands("ufw", "4789/udp")[1] == "ufw allow 4789/udp"
    assert "--add-port=2377/tcp" in firewall.open_commands("firewalld", "2377/tcp")[1]
