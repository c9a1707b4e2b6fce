"""A lab registry that went down: registry.ls and registry.push say so, lab.up brings it back
with the images it held (they live on the registry-data volume of manager1)."""

from __future__ import annotations

import json
import urllib.request
from contextlib import contextmanager

import pytest

from provision.remote.engine_clients import node_client
from tests.labs import a_lab, cli, status_json

pytestmark = pytest.mark.integration
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def registry_lab(engine):
    with a_lab("regdown", "--managers", "1", "--workers", "0") as name:
        yield name


def tags(registry: str, repository: str) -> list[str]:
    """The registry's own answer, asked over HTTP (not through swarmdeck)."""
    with _direct.open(f"http://{registry}/v2/{repository}/tags/list", timeout=10) as response:
        return sorted(json.loads(response.read())["tags"] or [])


@contextmanager
def an_image_only_this_test_pushed(engine, name: str, tag: str):
    """``LAB-kept:TAG`` pushed into the lab registry: lab.up's demo step would not bring it back."""
    repository = f"{name}-kept"
    engine.images.get("swarmdeck/web:2").tag(repository, tag)
    try:
        cli("registry.push", f"{repository}:{tag}", "--lab", name)
        yield repository
    finally:
        engine.images.remove(f"{repository}:{tag}")


def registry_container(name: str):
    status = status_json(name)
    client = node_client(name, status["nodes"][0]["address"])
    try:
        return client.containers.get("registry")
    finally:
        client.close()


def test_a_killed_registry_is_named_and_lab_up_restarts_it_with_its_images(registry_lab, engine):
    name = registry_lab
    registry = status_json(name)["registry"]
    with an_image_only_this_test_pushed(engine, name, "5") as kept:
        assert tags(registry, kept) == ["5"]
        before = registry_container(name)
        before.kill()  # as `docker kill registry` on manager1
        assert registry_container(name).status == "exited"

        listing = cli("registry.ls", "--lab", name, check=False)
        assert listing.returncode == 1
        assert "error: the registry container on manager1 is not running (exited with code 137 at " in listing.stderr
        assert (f"hint: `invoke lab.up --lab {name}` starts it again with its data kept (the images are on its "
                "registry-data volume)") in listing.stderr
        pushed = cli("registry.push", "swarmdeck/web:1", "--lab", name, check=False)
        assert pushed.returncode == 1 and "the registry container on manager1 is not running" in pushed.stderr

        up = cli("lab.up", "--lab", name, "--managers", "1", "--workers", "0")
        assert "container exited before, started again: its images are kept" in up.stderr
        after = registry_container(name)
        assert after.status == "running" and after.id == before.id  # started again, not made anew
        assert tags(registry, kept) == ["5"] and tags(registry, "swarmdeck/web") == ["1", "2", "3"]
        assert "swarmdeck/web: 1, 2, 3" in cli("registry.ls", "--lab", name).stdout


def test_a_removed_registry_container_is_made_again_on_the_same_volume(registry_lab, engine):
    name = registry_lab
    registry = status_json(name)["registry"]
    with an_image_only_this_test_pushed(engine, name, "6") as kept:
        before = registry_container(name)
        before.remove(force=True)  # as `docker rm -f registry` on manager1
        listing = cli("registry.ls", "--lab", name, check=False)
        assert listing.returncode == 1
        assert "the lab registry is not running: there is no registry container on manager1" in listing.stderr
        assert "the images pushed before are kept on its registry-data volume" in listing.stderr
        up = cli("lab.up", "--lab", name, "--managers", "1", "--workers", "0")
        assert "container created, with the registry-data volume" in up.stderr
        after = registry_container(name)
        assert after.status == "running" and after.id != before.id
        assert "6" in tags(registry, kept) and tags(registry, "swarmdeck/web") == ["1", "2", "3"]
