"""The docker provider's node containers: runtime profiles and first-boot archives."""

import io
import tarfile

from provision.providers.docker import runtime_profile as runtime
from provision.providers.docker.node_container import tar_of as _tar
from provision.remote.node_files import File


def test_runtime_profiles_build_the_right_host_config():
    import docker
    api = docker.APIClient(base_url="unix:///nonexistent", version="1.41")
    privileged = runtime.RuntimeProfile("privileged", "2").host_config(api)
    assert privileged["Privileged"] is True and privileged["CgroupnsMode"] == "private"
    assert "MaskedPaths" not in privileged
    restricted = runtime.RuntimeProfile("restricted", "1").host_config(api, {"vol": {"bind": "/var/lib/docker", "mode": "rw"}})
    assert not restricted.get("Privileged")
    assert restricted["CapAdd"] == ["ALL"] and restricted["CapDrop"] == ["SYS_RESOURCE"]
    assert restricted["MaskedPaths"] == [] and restricted["ReadonlyPaths"] == []
    assert "/sys/fs/cgroup:/sys/fs/cgroup:rw" in restricted["Binds"]
    assert "vol:/var/lib/docker:rw" in restricted["Binds"]
    v2 = runtime.RuntimeProfile("restricted", "2").host_config(api)
    assert not any(b.startswith("/sys/fs/cgroup") for b in v2["Binds"])


def test_first_boot_archive_keeps_paths_and_modes():
    data = _tar([File("/root/.ssh/authorized_keys", b"key\n", 0o600), File("/etc/docker/daemon.json", b"{}")])
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert set(members) == {"root/.ssh/authorized_keys", "etc/docker/daemon.json"}
    assert members["root/.ssh/authorized_keys"].mode == 0o600


def test_a_rollback_removes_only_a_container_that_carries_its_lab_label():
    from provision.providers.docker.provider import DockerProvider

    class Container:
        def __init__(self, lab):
            self.labels, self.removed = {"io.swarmdeck.lab": lab}, False

        def remove(self, force=False, v=False):
            self.removed = True

    mine, theirs = Container("web"), Container("other")

    class Containers:
        def get(self, name):
            return {"web-manager1": mine, "web-worker1": theirs}[name]

    provider = DockerProvider(client=type("Client", (), {"containers": Containers()})())
    provider._remove_container("web-manager1", "web")
    provider._remove_container("web-worker1", "web")
    assert mine.removed and not theirs.removed
