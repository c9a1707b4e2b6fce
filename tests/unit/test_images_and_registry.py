"""The apt mirror of node images, and names and offline builds of the lab registry."""

import pytest

from provision.errors import LabError
from provision.images import apt_mirror as mirror
from provision.lab_services import registry


def test_mirror_comes_from_apt_sources_in_both_formats(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("# nothing\ndeb [arch=amd64] http://sec.example/debian-security bookworm-security main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://other.example/x\nSuites: bookworm\nComponents: contrib\n"
    )
    assert mirror.debian_mirror("bookworm", mirror.read_sources(tmp_path)) == "http://mirror.example/debian"
    with pytest.raises(LabError, match="serves Debian 'trixie' main") as caught:
        mirror.debian_mirror("trixie", mirror.read_sources(tmp_path))
    assert "--mirror" in caught.value.hint


@pytest.mark.parametrize("image, expected", [
    ("swarmdeck/web:1", "10.0.0.10:5000/swarmdeck/web:1"),
    ("alpine", "10.0.0.10:5000/alpine:latest"),
    ("docker.io/library/nginx:1.25", "10.0.0.10:5000/library/nginx:1.25"),
    ("localhost:5000/x/y", "10.0.0.10:5000/x/y:latest"),
])
def test_images_are_renamed_into_the_lab_registry(image, expected):
    assert registry.lab_reference("10.0.0.10:5000", image) == expected


def test_registry_image_build_is_offline_and_quoted():
    command = registry.build_command()
    assert "docker import" in command and "pull" not in command
    assert "ldd /usr/bin/docker-registry" in command


class _PruneImage:
    def __init__(self, image_id: str, tags: list[str]):
        self.id, self.tags = image_id, tags


class _PruneEngine:
    """The host engine as image.prune sees it: images by tag, containers by image id."""

    def __init__(self, images: list[_PruneImage], used: set[str]):
        self._images, self.removed = images, []
        outer = self

        class Images:
            def list(self):
                return outer._images

            def get(self, tag):
                return next(i for i in outer._images if tag in i.tags)

            def remove(self, tag):
                outer.removed.append(tag)

        class Container:
            def __init__(self, image_id):
                self.attrs = {"Image": image_id}

        class Containers:
            def list(self, all, ignore_removed):
                return [Container(i) for i in used]

        self.images, self.containers = Images(), Containers()


def test_prune_removes_old_node_and_stand_in_images_but_not_current_or_used_ones():
    from provision.images import node as node_images
    from provision.images import prune as image_prune
    from provision.images import tutorial

    current_node = node_images.node_image_tag()
    current_redis = tutorial.local_tag(tutorial.by_name("redis"))
    engine = _PruneEngine([
        _PruneImage("sha256:node-now", [current_node, "swarmdeck/node:000000000001"]),  # old name, same image
        _PruneImage("sha256:node-old", ["swarmdeck/node:000000000002"]),  # a lab's nodes still use it
        _PruneImage("sha256:redis-now", [current_redis]),
        _PruneImage("sha256:redis-old", ["swarmdeck/stand-in/redis:000000000003"]),
        _PruneImage("sha256:mine", ["swarmdeck/node:mine", "debian:bookworm"]),  # not a recipe tag: not ours to judge
    ], used={"sha256:node-now", "sha256:node-old"})

    listed = image_prune._engine_images(engine, dry_run=True)
    assert listed == ["image swarmdeck/node:000000000001", "image swarmdeck/stand-in/redis:000000000003"]
    assert engine.removed == []
    assert image_prune._engine_images(engine, dry_run=False) == listed
    assert engine.removed == ["swarmdeck/node:000000000001", "swarmdeck/stand-in/redis:000000000003"]
