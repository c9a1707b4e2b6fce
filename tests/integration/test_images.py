"""The node image's Dockerfile path (for hosts with Docker Hub) builds a working node root.

Docker Hub is out of reach here, so the test builds FROM the offline-built node image,
which is Debian too: apt-get, the package list and finish.sh run for real.
"""

from __future__ import annotations

import pytest

from provision.images import node as images
from provision.progress import RecordingReporter

pytestmark = pytest.mark.integration


def test_dockerfile_build_runs_the_same_recipe(engine):
    tag, base = "it-node-dockerfile:test", images.node_image_tag()
    assert images.has_image(engine, base), "build the node image first: invoke image.build"
    try:
        images.build_with_dockerfile(engine, tag, RecordingReporter(), base=base)
        check = ("test -x /usr/local/sbin/swarmdeck-init && test -L /etc/service/docker "
                 "&& test -L /etc/service/sshd && ! ls /etc/ssh/ssh_host_* 2>/dev/null "
                 "&& for c in dockerd docker-registry busybox runsvdir tini; do command -v $c; done")
        out = engine.containers.run(tag, ["sh", "-c", check], entrypoint=[], remove=True).decode()
        assert out.split() == ["/usr/sbin/dockerd", "/usr/bin/docker-registry", "/usr/bin/busybox", "/usr/bin/runsvdir", "/usr/bin/tini"]
        config = engine.images.get(tag).attrs["Config"]
        assert config["Entrypoint"] == ["/usr/bin/tini", "--", "/usr/local/sbin/swarmdeck-init"]
        assert config["Labels"]["io.swarmdeck.kind"] == "node-image"
    finally:
        engine.images.remove(tag, force=True) if images.has_image(engine, tag) else None


def test_build_method_choice():
    assert images.choose_method("dockerfile") == "dockerfile"
    assert images.choose_method("auto") in ("debootstrap", "dockerfile")
    with pytest.raises(Exception, match="unknown image build method"):
        images.choose_method("kaniko")
