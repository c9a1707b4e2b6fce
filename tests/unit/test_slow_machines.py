"""Slow machines: timeouts follow the lab's pace, slow calls are retried, and a failed
optional step of lab.up leaves the formed lab up with the command that finishes it."""

from __future__ import annotations

import dataclasses

import pytest
import requests

from orchestrator import create
from orchestrator.clients import ClientPool
from provision import plan as machine
from provision import state
from provision.errors import ProviderError, WaitTimeout
from provision.ledger import Ledger
from provision.progress import RecordingReporter
from provision.providers.libvirt import domains as libvirt_domains
from provision.providers.libvirt import provider as lv
from provision.remote import engine_clients
from provision.spec import load as spec_load
from provision.wait import retried


def a_plan(pace: float = 1.0, **spec) -> machine.LabPlan:
    lab_spec = spec_load.load_spec(None, {}, {"name": "slow", "managers": 1, "workers": 1, **spec})
    return machine.plan(lab_spec, "10.199.9.0/24", 1500, pace=pace)


def test_engine_timeouts_follow_the_lab_pace():
    assert ClientPool(a_plan(), timeout=30).timeout == 30
    pool = ClientPool(a_plan(pace=6.0), timeout=30)
    assert pool.timeout == 180 and a_plan(pace=6.0).scaled(90) == 540
    pool.rescale(dataclasses.replace(a_plan(), pace=2.5))
    assert pool.timeout == 75


def test_vms_under_emulation_are_paced_slower_than_under_kvm(monkeypatch):
    monkeypatch.setenv(libvirt_domains.DOMAIN_TYPE_ENV, "qemu")
    assert lv.LibvirtProvider().expected_domain_type() == "qemu"
    assert libvirt_domains.PACE["qemu"] > libvirt_domains.PACE["kvm"] >= 1


def test_a_measured_pace_is_kept_for_later_commands(monkeypatch):
    class SlowEngine:
        def version(self):
            now[0] += 1.0  # a second for a call a container node answers in milliseconds

    now = [0.0]
    monkeypatch.setattr(engine_clients.time, "monotonic", lambda: now[0])
    assert engine_clients.measure_pace(SlowEngine()) == engine_clients.MAX_PACE  # capped
    state.write_pace("slow", 7.0)
    from provision import inventory
    assert inventory.with_measured_pace(a_plan()).pace == 7.0
    assert inventory.with_measured_pace(a_plan(pace=8.0)).pace == 8.0  # never slower than the provider says


def test_a_slow_call_is_retried_then_reported_with_its_attempts():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=30)")
        return "done"

    assert retried(flaky, describe="pushing web:1", timeout=30) == "done" and len(calls) == 2

    def always_slow():
        raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=180)")

    with pytest.raises(WaitTimeout) as caught:
        retried(always_slow, describe="pushing web:1 through the engine of manager1", timeout=180)
    assert "pushing web:1 through the engine of manager1 did not finish: 2 attempts of up to 180 s" in str(caught.value)


class BrokenBalancer:
    name = "docker"

    def ensure_load_balancer(self, plan, ledger=None):
        raise ProviderError("the lab's load balancer slow-lb could not start: address in use")


def test_a_failed_optional_step_leaves_the_lab_up_and_says_how_to_finish(monkeypatch):
    monkeypatch.setattr(create.entrypoint, "entry_point", lambda plan: create.entrypoint.EntryPoint("load balancer", "x"))

    def no_push(plan, clients, reporter):
        raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=30)")

    monkeypatch.setattr(create, "push_demo_images", no_push)
    reporter = RecordingReporter()
    run = create.Run(a_plan().spec, BrokenBalancer(), reporter, create.UpOptions(), Ledger(), a_plan(),
                     clients=ClientPool(a_plan()))
    optional = tuple(action for action in create.ACTIONS if action.finish_with)
    failed = create.run_actions(optional, run)
    assert failed == ["entry point", "demo images"]
    warnings = "\n".join(reporter.kinds("warn"))
    assert "lab slow is formed, but its entry point step failed: the lab's load balancer" in warnings
    assert "finish the demo images step with `swarmdeck image.demo --lab slow`" in warnings
    assert "finish the entry point step with `swarmdeck lab.up --lab slow`" in warnings


def test_the_engine_waits_of_host_setup_and_lab_start_follow_the_lab_pace(monkeypatch):
    from orchestrator import chaos
    from provision import setup
    from provision.remote.node_files import File
    from provision.setup import engine_config
    from tests.unit.fakes import FakeHost

    waits = []
    monkeypatch.setattr(engine_config, "wait_until", lambda answers, timeout, **_: waits.append(timeout))
    slow = a_plan(pace=6.0)
    host = FakeHost("manager1")
    config_step = dict(setup.steps(slow))["engine config"]
    monkeypatch.setattr(setup, "engine_files", lambda plan, node: [File("/etc/docker/daemon.json", b"{}", 0o644)])
    assert config_step(host, slow.node("manager1"))  # the file was missing: written, engine restarted
    assert waits == [6.0 * engine_config.ENGINE_WAIT]

    class Provider:
        def start(self, machine):
            pass

        def machine(self, lab, node):
            return node

    class Lab:
        plan, provider = slow, Provider()

    monkeypatch.setattr(chaos.machines, "open_hosts", lambda plan, provider, made: {"manager1": host})
    monkeypatch.setattr(chaos, "ensure_hosts_block", lambda *args: False)
    chaos.start(Lab(), "manager1")
    assert waits[-1] == 6.0 * engine_config.ENGINE_WAIT
