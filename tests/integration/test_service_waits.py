"""Service tasks wait like the docker CLI, refuse images no node could get, fail with Swarm's
reason, and warn where there is no routing mesh; checked on a real lab through the SDK."""

from __future__ import annotations

import time

import pytest

from provision import kernel_features as ipvs
from provision.wait import wait_until
from tests.labs import cli, leader_client, new_lab_name

pytestmark = pytest.mark.integration
NO_MESH = "has no routing mesh"


@pytest.fixture(scope="module")
def lab(engine):
    """1 manager + 2 workers with the registry; yields (name, lab.up's output)."""
    name = new_lab_name("waits")
    result = cli("lab.up", "--lab", name, "--managers", "1", "--workers", "2")
    try:
        yield name, result.stdout + result.stderr
    finally:
        cli("lab.down", "--lab", name, check=False)


@pytest.fixture
def manager(lab):
    client = leader_client(lab[0])
    yield client
    client.close()


def current(manager, service: str) -> list[dict]:
    """Tasks Swarm means to run, with their state and image tag."""
    return [{"state": t["Status"]["State"], "tag": t["Spec"]["ContainerSpec"]["Image"].split("@")[0].rsplit(":", 1)[1]}
            for t in manager.services.get(service).tasks() if t["DesiredState"] == "running"]


def running(manager, service: str) -> list[str]:
    return [t["tag"] for t in current(manager, service) if t["state"] == "running"]


def exists(manager, service: str) -> bool:
    return any(s.name == service for s in manager.services.list())


def test_create_scale_update_rollback_wait_until_done(lab, manager):
    name, _ = lab
    created = cli("service.create", "--name", "waited", "swarmdeck/web:1", "--replicas", "3", "--lab", name)
    try:
        assert running(manager, "waited") == ["1"] * 3  # at once, no polling: the task waited
        assert "waited: 3/3 running (" in created.stderr
        assert "service waited created: 3/3 tasks running" in created.stderr

        cli("service.scale", "waited=5", "--lab", name)
        assert running(manager, "waited") == ["1"] * 5

        updated = cli("service.update", "waited", "--image", "swarmdeck/web:2", "--lab", name)
        assert sorted(running(manager, "waited")) == ["2"] * 5 and len(current(manager, "waited")) == 5
        assert manager.services.get("waited").attrs["UpdateStatus"]["State"] == "completed"
        assert "waited: 5/5 running" in updated.stderr

        cli("service.rollback", "waited", "--lab", name)
        assert sorted(running(manager, "waited")) == ["1"] * 5 and len(current(manager, "waited")) == 5
        assert manager.services.get("waited").attrs["UpdateStatus"]["State"] == "rollback_completed"

        broken = cli("service.update", "waited", "--image", "swarmdeck/web:3", "--lab", name, check=False)
        assert broken.returncode == 1
        assert "Swarm paused the update of service waited: update paused due to failure" in broken.stderr
        assert manager.services.get("waited").attrs["UpdateStatus"]["State"] == "paused"
    finally:
        cli("service.rm", "waited", "--lab", name)


def test_a_tag_the_lab_registry_lacks_is_refused_and_nothing_is_created(lab, manager):
    name, _ = lab
    refused = cli("service.create", "--name", "notag", "swarmdeck/web:9", "--replicas", "3", "--lab", name,
                  check=False)
    assert refused.returncode == 1
    assert "has no tag '9' of swarmdeck/web (its tags: 1, 2, 3)" in refused.stderr
    assert "registry.push swarmdeck/web:9" in refused.stderr
    assert not exists(manager, "notag")
    offline = cli("service.create", "--name", "elsewhere", "nginx:1.25", "--lab", name, check=False)
    assert offline.returncode == 1 and "it is on no node of lab" in offline.stderr
    assert "registry.push nginx:1.25" in offline.stderr
    assert not exists(manager, "elsewhere")


def test_an_impossible_constraint_fails_with_swarms_reason(lab, manager):
    name, _ = lab
    started = time.monotonic()
    failed = cli("service.create", "--name", "nowhere", "swarmdeck/web:1", "--constraint", "node.labels.zone==mars",
                 "--lab", name, check=False)
    try:
        assert failed.returncode == 1
        assert "no suitable node (scheduling constraints not satisfied on 3 nodes)" in failed.stderr
        assert "changed" not in failed.stderr  # not "created" at 0/1 running
        assert time.monotonic() - started < 60  # Swarm's reason, not a timeout
    finally:
        cli("service.rm", "nowhere", "--lab", name)


def test_detach_returns_while_tasks_are_still_starting(lab, manager):
    name, _ = lab
    cli("service.create", "--name", "detached", "swarmdeck/web:1", "--replicas", "3", "--detach", "--lab", name)
    try:
        assert len(running(manager, "detached")) < 3
        wait_until(lambda: len(running(manager, "detached")) == 3, timeout=90, describe="3 detached tasks running")
    finally:
        cli("service.rm", "detached", "--lab", name)


def test_stack_deploy_waits_for_its_services(lab, manager):
    name, _ = lab
    deployed = cli("stack.deploy", "web", "waited", "--lab", name)
    try:
        tasks = current(manager, "waited_web")
        assert tasks and all(t["state"] == "running" for t in tasks)
        assert "stack waited deployed: waited_web" in deployed.stderr and "Creating service waited_web" in deployed.stderr
        assert "deployed rewritten" not in deployed.stderr  # the shipped stack publishes as the lab allows
    finally:
        cli("stack.rm", "waited", "--lab", name)


def test_the_no_mesh_warning_appears_for_ingress_ports_only(lab, manager):
    name, up = lab
    without_mesh = not ipvs.available()
    assert ("no routing mesh in this lab" in up) == without_mesh
    ingress = cli("service.create", "--name", "meshed", "swarmdeck/web:1", "--publish", "8096:80", "--detach",
                  "--lab", name)
    hosted = cli("service.create", "--name", "hosted", "swarmdeck/web:1", "--publish", "8097:80:host", "--detach",
                 "--lab", name)
    try:
        assert (NO_MESH in ingress.stderr) == without_mesh
        if without_mesh:
            assert "`--publish 8096:80:host`" in ingress.stderr and "--endpoint-mode dnsrr" in ingress.stderr
        assert NO_MESH not in hosted.stderr
    finally:
        cli("service.rm", "meshed", "--lab", name)
        cli("service.rm", "hosted", "--lab", name)
