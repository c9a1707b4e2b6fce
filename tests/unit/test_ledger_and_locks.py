"""Concurrency and interruption without an engine: the ledger a failed run rolls back, the
lab lock around lab.up, the subnet retry against a fake engine, atomic key writes and
--no-wait."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import docker.errors
import pytest
from cryptography.hazmat.primitives import serialization

from orchestrator import create
from provision import inventory, machines, state
from provision.errors import Interrupted, LabError, ProviderError, SubnetTaken
from provision.ledger import Ledger, roll_back
from provision.paths import REPO, home, lab_dir
from provision.plan import plan
from provision.progress import RecordingReporter
from provision.providers.base import Capabilities
from provision.providers.docker.provider import DockerProvider
from provision.remote import keys, tls
from provision.spec import load as spec_load

# -- the ledger -------------------------------------------------------------------------------


def test_a_ledger_undoes_in_reverse_once_each_and_past_a_stuck_entry():
    removed, ledger, reporter = [], Ledger(), RecordingReporter()
    ledger.record("network n", lambda: removed.append("network"))
    ledger.record("volume v", lambda: removed.append("volume"))
    ledger.record("container c", lambda: (_ for _ in ()).throw(ProviderError("engine said no")))
    ledger.record("volume v", lambda: removed.append("volume again"))  # a retried creation: once
    ledger.record("load balancer lb", lambda: removed.append("lb"))
    assert ledger.roll_back(reporter) == ["container c"]
    assert removed == ["lb", "volume", "network"]
    assert reporter.kinds("info") == ["removed load balancer lb", "removed volume v", "removed network n"]
    assert "could not remove container c: engine said no" in reporter.kinds("warn")
    assert ledger.entries == []


def test_a_second_ctrl_c_during_the_rollback_says_how_to_finish(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/swarmdeck", "lab.up"])
    removed, ledger = [], Ledger()
    ledger.record("network n", lambda: removed.append("network"))
    ledger.record("container c", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(Interrupted) as caught:
        roll_back(ledger, RecordingReporter(), announce="lab.up failed", resume="`swarmdeck lab.up --lab web`",
                  remove="`swarmdeck lab.down --lab web`")
    assert str(caught.value) == ("interrupted: run `swarmdeck lab.up --lab web` to resume or "
                                 "`swarmdeck lab.down --lab web` to remove what is left")
    assert caught.value.exit_code == 130 and removed == []  # stopped where it was interrupted


def test_nothing_to_roll_back_says_nothing():
    reporter = RecordingReporter()
    roll_back(Ledger(), reporter, announce="lab.up failed: removing", resume="r", remove="d")
    assert reporter.lines == []


# -- lab.up: only what this run created goes -------------------------------------------------


class FakeProvider:
    """A backend whose resources are names in a list; ``create`` fails at node ``fail_at``."""

    name = "docker"
    capabilities = Capabilities(boot_timeout=90)

    def __init__(self, existing=(), fail_at=None, created_spec=None, fail_after=None):
        self.resources, self.fail_at, self.created_spec = list(existing), fail_at, created_spec
        self.fail_after = fail_after  # a node made, whose engine then does not start
        self.removed: list[str] = []
        self.lock_was_held = False

    def check(self):
        pass

    def prepare(self, reporter, **options):
        pass

    def stored_spec(self, lab):
        return self.created_spec if "network" in self.resources else None

    def resolve(self, spec):
        return plan(spec, "10.199.9.0/24", 1500)

    def _make(self, what, ledger):
        ledger.record(what, lambda: self._remove(what))
        self.resources.append(what)

    def _remove(self, what):
        if what in self.resources:
            self.resources.remove(what)
            self.removed.append(what)

    def ensure_network(self, plan, ledger=None):
        if "network" in self.resources:
            return False
        self._make("network", ledger)
        return True

    def create(self, plan, first_boot, reporter, ledger=None):
        with pytest.raises(state.LabBusy):  # lab.up holds the lab's lock while it works
            with state.lab_lock(plan.name, wait=False):
                pass
        self.lock_was_held = True
        for node in plan.nodes:
            if node.name == self.fail_at:
                raise ProviderError(f"creating {node.name} failed")
            if node.name not in self.resources:
                self._make(node.name, ledger)
            if node.name == self.fail_after:
                raise ProviderError(f"the engine of {node.name} did not start")
        return []


def _spec(name="web", **overrides):
    return spec_load.load_spec(None, {}, {"name": name, "managers": 1, "workers": 2, **overrides})


def test_a_failed_up_of_a_new_lab_removes_what_it_made_in_reverse_and_its_state_folder(monkeypatch):
    provider = FakeProvider(fail_at="worker2")
    monkeypatch.setattr(create, "get_provider", lambda name, lab=None: provider)
    reporter = RecordingReporter()
    with pytest.raises(ProviderError):
        create.up(_spec(), reporter)
    assert provider.lock_was_held
    assert provider.removed == ["worker1", "manager1", "network"] and provider.resources == []
    assert not lab_dir("web").exists()  # keys and records gone, and no empty folder left
    assert any("removing what it created for lab web" in line for line in reporter.kinds("warn"))


def test_a_failed_up_of_an_existing_lab_removes_only_what_this_run_made(monkeypatch):
    spec = _spec()
    provider = FakeProvider(existing=["network", "manager1"], fail_at="worker2", created_spec=spec)
    state.write_provider("web", "docker")
    monkeypatch.setattr(create, "get_provider", lambda name, lab=None: provider)
    with pytest.raises(ProviderError):
        create.up(spec, RecordingReporter())
    assert provider.removed == ["worker1"] and provider.resources == ["network", "manager1"]
    assert state.exists("web")  # the state folder was there before this run: it stays


def test_keep_keeps_what_a_failed_up_made(monkeypatch):
    provider = FakeProvider(fail_at="worker2")
    monkeypatch.setattr(create, "get_provider", lambda name, lab=None: provider)
    with pytest.raises(ProviderError):
        create.up(_spec(), RecordingReporter(), create.UpOptions(keep=True))
    assert provider.resources == ["network", "manager1", "worker1"] and state.exists("web")


def test_a_failed_add_removes_the_machine_it_made_and_nothing_else(monkeypatch):
    from orchestrator import membership

    spec = _spec(workers=1)
    provider = FakeProvider(existing=["network", "manager1", "worker1"], created_spec=spec, fail_after="worker2")
    state.write_provider("web", "docker")
    monkeypatch.setattr(inventory, "get_provider", lambda name, lab=None: provider)
    keys.host_key("web", "worker1")
    with pytest.raises(ProviderError, match="engine of worker2"):
        membership.add_node("web", "worker2", "worker", {}, RecordingReporter())
    assert provider.removed == ["worker2"] and provider.resources == ["network", "manager1", "worker1"]
    assert [n.name for n in inventory.current_spec(provider, "web").nodes] == ["manager1", "worker1"]
    assert sorted(p.name for p in (keys.ssh_dir("web") / "hosts").iterdir()) == [
        "manager1_ed25519", "manager1_ed25519.pub", "worker1_ed25519", "worker1_ed25519.pub"]
    assert "worker2" not in keys.read_known_hosts("web") and not (tls.tls_dir("web") / "nodes" / "worker2").exists()


# -- the subnet: chosen and used under a machine-wide lock, retried once on an overlap --------


class FakeNetwork:
    def __init__(self, networks, name, subnet, labels=None):
        self._networks, self.id, self.name = networks, name, name
        self.attrs = {"Name": name, "Labels": labels or {}, "IPAM": {"Config": [{"Subnet": subnet}]}, "Options": {}}

    def remove(self):
        self._networks.items.pop(self.name)


class FakeNetworks:
    """The engine's networks; ``rivals`` appear one per create call, as if another process
    had made them between the choice of a subnet and its use."""

    def __init__(self, rivals=()):
        self.items: dict[str, FakeNetwork] = {}
        self.rivals = list(rivals)
        self.lock_was_held = []

    def list(self, filters=None):
        wanted = [w.split("=", 1) for w in (filters or {}).get("label", [])]
        return [n for n in self.items.values() if all(n.attrs["Labels"].get(k) == v for k, v in wanted)]

    def get(self, name):
        if name not in self.items:
            raise docker.errors.NotFound(f"network {name} not found")
        return self.items[name]

    def create(self, name, driver, ipam, options, labels):
        self.lock_was_held.append(_subnets_lock_held())
        if self.rivals:
            rival, subnet = self.rivals.pop(0)
            self.items[rival] = FakeNetwork(self, rival, subnet)
        subnet = ipam["Config"][0]["Subnet"]
        if any(n.attrs["IPAM"]["Config"][0]["Subnet"] == subnet for n in self.items.values()):
            raise docker.errors.APIError("403 Client Error: Forbidden",
                                         explanation="Pool overlaps with other one on this address space")
        self.items[name] = FakeNetwork(self, name, subnet, labels)


class FakeClient:
    def __init__(self, rivals=()):
        self.networks = FakeNetworks(rivals)


def _subnets_lock_held() -> bool:
    try:
        with state.locked(home() / "locks" / "subnets.lock", "subnets", wait=False):
            return False
    except state.LabBusy:
        return True


def test_a_subnet_taken_meanwhile_is_retried_with_the_next_free_one():
    client = FakeClient(rivals=[("rival-1", "10.199.0.0/24")])
    ledger, reporter = Ledger(), RecordingReporter()
    made = machines.lab_network(_spec(), DockerProvider(client), reporter, ledger)
    assert made.subnet == "10.199.1.0/24"
    assert client.networks.items["web-net"].attrs["IPAM"]["Config"][0]["Subnet"] == "10.199.1.0/24"
    assert client.networks.lock_was_held == [True, True]
    assert any("10.199.0.0/24: it overlaps network 'rival-1'" in w and "trying the next free subnet, 10.199.1.0/24" in w
               for w in reporter.kinds("warn"))
    assert [e.what for e in ledger.entries] == ["network web-net"]
    ledger.roll_back(reporter)
    assert set(client.networks.items) == {"rival-1"}  # the rival is not the lab's: it stays


def test_a_second_overlap_is_a_clean_error_naming_both_networks():
    client = FakeClient(rivals=[("rival-1", "10.199.0.0/24"), ("rival-2", "10.199.1.0/24")])
    with pytest.raises(LabError) as caught:
        machines.lab_network(_spec(), DockerProvider(client), RecordingReporter(), Ledger())
    message = str(caught.value)
    assert "the lab network web-net found no free subnet" in message
    assert "network 'rival-1' (10.199.0.0/24)" in message and "network 'rival-2' (10.199.1.0/24)" in message
    assert "--subnet" in caught.value.hint and "web-net" not in client.networks.items


def test_a_given_subnet_taken_meanwhile_is_not_swapped_for_another():
    client = FakeClient(rivals=[("rival-1", "10.199.5.0/24")])
    with pytest.raises(SubnetTaken) as caught:
        machines.lab_network(_spec(network={"subnet": "10.199.5.0/24"}), DockerProvider(client), RecordingReporter(),
                        Ledger())
    assert "the lab network web-net cannot use subnet 10.199.5.0/24: it overlaps network 'rival-1'" in str(caught.value)


# -- keys and certificates: whole or not at all ------------------------------------------------


def _interrupt_the_next_rename(monkeypatch):
    real = os.replace

    def interrupted(source, target):
        monkeypatch.setattr(os, "replace", real)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".*") if p.is_file()]


def test_an_interrupted_key_generation_leaves_no_half_key(monkeypatch):
    _interrupt_the_next_rename(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        keys.lab_key("web")
    private = keys.ssh_dir("web") / "id_ed25519"
    assert not private.exists() and _leftovers(keys.ssh_dir("web")) == []
    pair = keys.lab_key("web")  # the next run makes a whole pair
    loaded = serialization.load_ssh_private_key(private.read_bytes(), password=None)
    public = loaded.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert pair.public_line.startswith(public.decode()) and oct(private.stat().st_mode & 0o777) == "0o600"


def test_an_interrupted_ca_generation_leaves_no_half_ca(monkeypatch):
    _interrupt_the_next_rename(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        tls.client_certs("web")
    folder = tls.tls_dir("web")
    assert not (folder / "ca-key.pem").exists() and not (folder / "ca.pem").exists() and _leftovers(folder) == []
    certs = tls.client_certs("web")
    assert certs.exists() and oct(certs.key.stat().st_mode & 0o777) == "0o600"
    assert oct((folder / "ca-key.pem").stat().st_mode & 0o777) == "0o600"


# -- --no-wait ---------------------------------------------------------------------------------


def swarmdeck(*args: str) -> subprocess.CompletedProcess:
    command = Path(sys.executable).with_name("swarmdeck")
    return subprocess.run([str(command), *args], capture_output=True, text=True, cwd=REPO, env=os.environ.copy(),
                          timeout=60)


def test_no_wait_refuses_every_change_while_another_run_holds_the_lab(tmp_path):
    with state.lab_lock("busy"):
        for argv in (("lab.up", "--managers", "1", "--workers", "0"), ("lab.down",), ("lab.add", "worker9"),
                     ("lab.remove", "worker1")):
            result = swarmdeck(*argv, "--lab", "busy", "--no-wait")
            assert result.returncode == 75, (argv, result.stderr)
            assert f"lab busy is busy: pid {os.getpid()}" in result.stderr and "Traceback" not in result.stderr
            assert f"then run `swarmdeck {argv[0]}" in result.stderr and "--lab busy` again" in result.stderr
    assert state.is_empty("busy")



def test_after_ctrl_c_the_waits_of_helper_threads_give_up(monkeypatch):
    import threading

    from provision import wait

    monkeypatch.setattr(wait, "_interrupted", threading.Event())  # this test's own flag
    started, outcome = threading.Event(), []

    def waiting():
        def never():
            started.set()
            raise wait.NotYet("SSH on worker1 refused")

        try:
            wait.wait_until(never, timeout=60, interval=0.05, describe="SSH on worker1")
        except LabError as err:
            outcome.append(str(err))

    helper = threading.Thread(target=waiting)
    helper.start()
    assert started.wait(5)
    wait.stop_helper_threads()
    helper.join(5)
    assert not helper.is_alive() and outcome == ["stopped waiting for SSH on worker1: the run was interrupted"]
    assert wait.wait_until(lambda: "done", timeout=1, describe="x") == "done"  # the main thread still waits
