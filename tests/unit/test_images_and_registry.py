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
