"""Concurrency and interruption on real labs: runs of one lab take turns, labs made at once
get their own subnets, a failed lab.up removes only what it made, a second Ctrl-C during
a rollback says how to finish."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from provision.paths import REPO, lab_dir
from provision.providers.docker import names as labels
from provision.wait import NotYet, wait_until
from tests.labs import (
    INVOKE,
    OUTPUTS,
    cli,
    lab_resources,
    new_lab_name,
    status_json,
    swarm_nodes,
)

pytestmark = pytest.mark.integration

SMALL = ("--managers", "1", "--no-registry")
FAILING_REGISTRY = str(REPO / "tests" / "data" / "registry-on-2376.yaml")  # fails at the registry step


def start(*args: str) -> subprocess.Popen:
    """``invoke ARGS`` in the background (its output is kept for the secret scan by ``finish``),
    with Ctrl-C's default action: a suite started in the background of a shell without job
    control inherits SIGINT ignored, and so would the run, which then never sees the test's
    Ctrl-C (seen here: both were ignored and the run ended on its own timeout)."""
    return subprocess.Popen([INVOKE, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    """Wait for ``proc``; its exit code and stderr (a traceback fails the test)."""
    out, err = proc.communicate(timeout=timeout)
    OUTPUTS.append((list(proc.args), out + err))
    assert "Traceback (most recent call last)" not in err, err
    return proc.returncode, err


def lock_holder(name: str) -> str:
    """What the lab's lock file says about its holder ("pid N (command)"), once someone holds it."""
    def holder() -> str:
        try:
            text = (lab_dir(name) / "lab.lock").read_text().strip()
        except OSError as err:
            raise NotYet(str(err)) from err
        if not text:
            raise NotYet("nobody holds the lock yet")
        return text

    return wait_until(holder, timeout=60, interval=0.05, describe=f"a run holding the lock of lab {name}")


def node_containers(engine, name: str) -> list[str]:
    return sorted(c.name for c in engine.containers.list(all=True, filters=labels.lab_filter(name, "node")))


def lab_subnet(engine, name: str) -> str:
    networks = engine.networks.list(filters=labels.lab_filter(name, "network"))
    assert len(networks) == 1, networks
    return engine.networks.get(networks[0].id).attrs["IPAM"]["Config"][0]["Subnet"]


def all_ready(name: str) -> list[dict]:
    def ready() -> list[dict]:
        nodes = status_json(name)["nodes"]
        if {n["state"] for n in nodes} != {"ready"}:
            raise NotYet(f"nodes: {[(n['name'], n['state']) for n in nodes]}")
        return nodes

    return wait_until(ready, timeout=90, interval=1, describe=f"every node of {name} ready")


def test_two_ups_of_one_new_lab_take_turns_and_make_one_lab(engine):
    name = new_lab_name("twin")
    first, second = start("lab.up", "--lab", name, *SMALL, "--workers", "1"), start(
        "lab.up", "--lab", name, *SMALL, "--workers", "1")
    try:
        holder = lock_holder(name)
        refused = cli("lab.up", "--lab", name, *SMALL, "--workers", "1", "--no-wait", check=False)
        down_refused = cli("lab.down", "--lab", name, "--no-wait", check=False)
        (code_1, err_1), (code_2, err_2) = finish(first), finish(second)
        assert code_1 == 0 and code_2 == 0, err_1 + err_2
        for result in (refused, down_refused):  # refused while either run holds the lab
            assert result.returncode == 75, result.stderr
            assert f"lab {name} is busy: pid {first.pid}" in result.stderr or \
                f"lab {name} is busy: pid {second.pid}" in result.stderr, result.stderr
            assert "without --no-wait it waits" in result.stderr
        waited = [(err, other) for err, other in ((err_1, second), (err_2, first)) if "waiting for it to finish" in err]
        assert len(waited) == 1, "exactly one run waited for the other"
        err, other = waited[0]
        assert f"lab {name} is busy: pid {other.pid} (" in err and f"pid {other.pid}" in holder
        assert node_containers(engine, name) == [f"{name}-manager1", f"{name}-worker1"]
        assert len(engine.networks.list(filters=labels.lab_filter(name, "network"))) == 1
        assert sorted(n["name"] for n in all_ready(name)) == ["manager1", "worker1"]
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
        cli("lab.down", "--lab", name, check=False)
    assert lab_resources(engine, name) == [] and not lab_dir(name).exists()


def test_two_new_labs_made_at_once_get_different_subnets(engine):
    names = [new_lab_name("net"), new_lab_name("net")]
    runs = [start("lab.up", "--lab", name, *SMALL, "--workers", "0") for name in names]
    try:
        for run in runs:
            code, err = finish(run)
            assert code == 0, err
        subnets = [lab_subnet(engine, name) for name in names]
        assert subnets[0] != subnets[1], subnets
        for name, subnet in zip(names, subnets):
            assert all_ready(name)[0]["address"].rsplit(".", 1)[0] == subnet.rsplit(".", 1)[0]
    finally:
        for name in names:
            cli("lab.down", "--lab", name, check=False)


def test_a_failed_up_keeps_an_existing_lab_and_removes_only_what_a_new_one_made(engine):
    existing = new_lab_name("kept")
    cli("lab.up", "--lab", existing, *SMALL, "--workers", "0")
    fresh = new_lab_name("gone")
    leftover = f"{fresh}-worker1-docker"  # a volume an earlier, killed run left: not this run's to remove
    try:
        before = sorted((c.name, c.id) for c in engine.containers.list(all=True, filters=labels.lab_filter(existing)))
        network = engine.networks.list(filters=labels.lab_filter(existing, "network"))[0].id
        all_ready(existing)
        node_id = swarm_nodes(existing)["manager1"]["ID"]
        failed = cli("lab.up", "--lab", existing, "--managers", "1", "--workers", "0", "--spec", FAILING_REGISTRY,
                     check=False)
        assert failed.returncode != 0 and "registry" in failed.stderr
        assert "removing what it created" not in failed.stderr  # it created nothing
        assert sorted((c.name, c.id) for c in engine.containers.list(all=True, filters=labels.lab_filter(existing))) \
            == before
        assert engine.networks.list(filters=labels.lab_filter(existing, "network"))[0].id == network
        all_ready(existing)
        assert swarm_nodes(existing)["manager1"]["ID"] == node_id  # the same swarm, not a new one

        engine.volumes.create(leftover, labels={labels.LAB: fresh, labels.KIND: "volume"})
        failed = cli("lab.up", "--lab", fresh, "--managers", "1", "--workers", "1", "--spec", FAILING_REGISTRY,
                     check=False)
        assert failed.returncode != 0 and "removing what it created" in failed.stderr
        assert lab_resources(engine, fresh) == [f"volume {leftover}"]
        assert not lab_dir(fresh).exists()  # its keys and records went, and no empty folder is left
        assert sorted((c.name, c.id) for c in engine.containers.list(all=True, filters=labels.lab_filter(existing))) \
            == before
    finally:
        cli("lab.down", "--lab", existing, check=False)
        cli("lab.down", "--lab", fresh, check=False)  # the leftover volume carries its label
    assert lab_resources(engine, existing) == [] and lab_resources(engine, fresh) == []


def _freeze_when_started(engine, events, node: str, frozen: threading.Event) -> None:
    """Pause ``node``'s container as soon as the engine starts it: the run then waits on a
    node that cannot answer SSH, so a Ctrl-C sent afterwards lands before the swarm forms,
    however slow this machine is to read the run's output (a Ctrl-C after ``lab.up`` ended
    has nothing to roll back). ``events`` is opened before the run starts, so no start is
    missed."""
    try:
        for event in events:
            if event.get("Actor", {}).get("Attributes", {}).get(labels.NODE) == node:
                engine.api.pause(event["id"])
                frozen.set()
                return
    finally:
        events.close()


def test_a_second_ctrl_c_during_the_rollback_says_how_to_finish(engine):
    name = new_lab_name("sigint")
    frozen = threading.Event()
    events = engine.events(decode=True, filters={"type": "container", "event": "start", "label": f"{labels.LAB}={name}"})
    threading.Thread(target=_freeze_when_started, args=(engine, events, "manager1", frozen), daemon=True).start()
    proc = start("lab.up", "--lab", name, *SMALL, "--workers", "1")
    lines, interrupted = [], 0

    def first_ctrl_c():
        nonlocal interrupted, first_at
        if frozen.wait(timeout=300):
            time.sleep(2)  # the run is now waiting on manager1
            first_at = time.monotonic()
            interrupted = 1
            proc.send_signal(signal.SIGINT)

    first_at = time.monotonic()
    threading.Thread(target=first_ctrl_c, daemon=True).start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if interrupted == 1 and "removing what it created" in line:
                proc.send_signal(signal.SIGINT)
                interrupted = 2
        proc.wait(timeout=120)
        ended_after = time.monotonic() - first_at
    finally:
        if proc.poll() is None:
            proc.kill()
        OUTPUTS.append((list(proc.args), "".join(lines) + (proc.stdout.read() if proc.stdout else "")))
    err = "".join(lines)
    assert interrupted == 2, err
    assert proc.returncode == 130 and "Traceback" not in err, err
    program = Path(INVOKE).name
    assert lines[-1].strip() == (f"interrupted: run `{program} lab.up --lab {name}` to resume or "
                                 f"`{program} lab.down --lab {name}` to remove what is left"), err
    assert ended_after < 60, f"the run took {ended_after:.0f}s to end after Ctrl-C"
    cli("lab.down", "--lab", name)  # what the message says removes what is left
    assert lab_resources(engine, name) == [] and not lab_dir(name).exists()
