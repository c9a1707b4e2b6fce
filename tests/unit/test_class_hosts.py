"""The class's hosts inventory: read and checked, remote capacity asked of the engine, labs placed
on it and kept there, and each door's address taken from its lab's host."""

from __future__ import annotations

import pytest

from orchestrator.classroom import hosts, lifecycle, placement, records
from provision.errors import UsageError


def write(tmp_path, text: str) -> str:
    path = tmp_path / "hosts.yaml"
    path.write_text(text)
    return str(path)


def test_an_inventory_of_the_local_engine_and_a_remote_one(tmp_path):
    read = hosts.read(write(tmp_path, """
hosts:
  - name: local
    capacity: 4g
  - name: rack2
    docker_host: ssh://swarmdeck@10.0.0.12
    capacity: 16g
"""))
    assert read == [placement.ClassHost("local", None, 4096, ""),
                    placement.ClassHost("rack2", {"DOCKER_HOST": "ssh://swarmdeck@10.0.0.12"}, 16384, "10.0.0.12")]
    assert hosts.from_records(hosts.to_records(read)) == read


def test_every_problem_of_an_inventory_is_named_at_once(tmp_path):
    with pytest.raises(UsageError) as err:
        hosts.read(write(tmp_path, """
hosts:
  - name: local
    docker_host: ssh://me@here
  - name: Rack 2
    docker_host: tcp://10.0.0.12:2375
    capacity: lots
    cores: 8
  - name: twice
    docker_host: ssh://a@b
  - name: twice
    docker_host: ssh://a@c
"""))
    text = str(err.value)
    assert "6 problem(s)" in text
    for fragment in ("takes no docker_host", "name must be lowercase", "must be ssh://USER@HOST",
                     "capacity 'lots'", "unknown key(s) cores", "'twice' is named twice"):
        assert fragment in text


@pytest.mark.parametrize("text", ["", "hosts: []", "hosts: local", "- name: local"])
def test_an_inventory_without_hosts_is_refused(tmp_path, text):
    with pytest.raises(UsageError, match="needs a list under 'hosts:'"):
        hosts.read(write(tmp_path, text))


def test_a_missing_inventory_file_says_so(tmp_path):
    with pytest.raises(UsageError, match="cannot read the hosts inventory"):
        hosts.read(str(tmp_path / "none.yaml"))


def test_a_remote_host_without_capacity_is_sized_from_its_engine(tmp_path, monkeypatch):
    asked = []

    class Engine:
        def info(self):
            return {"MemTotal": 8 * 1024 ** 3}

        def close(self):
            pass

    monkeypatch.setattr(hosts, "engine_client", lambda settings, timeout: asked.append(settings) or Engine())
    read = hosts.read(write(tmp_path, "hosts:\n  - name: big\n    docker_host: ssh://root@big.example\n"))
    assert asked == [{"DOCKER_HOST": "ssh://root@big.example"}]
    assert read[0].capacity_mb == 8192 - placement.HOST_RESERVE_MB and read[0].address == "big.example"


def test_labs_spread_over_the_inventory_and_the_doors_follow_their_host(tmp_path):
    inventory = [placement.ClassHost("local", None, 1000), placement.ClassHost("rack2", {"DOCKER_HOST": "ssh://a@r2"}, 1500, "r2")]
    where = placement.place(["c-s01", "c-s02", "c-s03"], 500, inventory)
    assert [where[lab].name for lab in ("c-s01", "c-s02", "c-s03")] == ["rack2", "local", "rack2"]
    record = records.ClassRecord("c", {}, address="192.0.2.7", hosts=hosts.to_records(inventory))
    assert records.door_address(record, records.Seat("s01", "s01", "c-s01", host="rack2")) == "r2"
    assert records.door_address(record, records.Seat("s02", "s02", "c-s02", host="local")) == "192.0.2.7"


def test_a_class_keeps_its_inventory_and_refuses_one_that_drops_a_host_with_labs(tmp_path):
    record = records.ClassRecord("c", {}, seats=[records.Seat("s01", "s01", "c-s01", host="rack2", snapshot=True)],
                                 hosts=hosts.to_records([placement.ClassHost("rack2", {"DOCKER_HOST": "ssh://a@r2"}, 900, "r2")]))
    assert [h.name for h in lifecycle.class_hosts(record, None)] == ["rack2"]
    with pytest.raises(UsageError, match="labs on host\\(s\\) rack2, which the hosts inventory leaves out"):
        lifecycle.class_hosts(record, write(tmp_path, "hosts:\n  - name: local\n"))
    assert [h.name for h in lifecycle.class_hosts(records.ClassRecord("d", {}), None)] == ["local"]


def test_the_baseline_compares_etc_docker_by_content_only(tmp_path):
    import io
    import tarfile

    from orchestrator.classroom import baseline

    def tar(files: dict[str, bytes], mtime: int) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), mtime
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    same = {"docker/daemon.json": b'{"tls": true}', "docker/ca.pem": b"CA"}
    assert baseline.tar_files(tar(same, 1)) == baseline.tar_files(tar(same, 2))
    assert baseline.tar_files(tar(same, 1)) != baseline.tar_files(tar({**same, "docker/daemon.json": b"{}"}, 1))
    assert baseline.restore_in_place(None, None, [], None, tmp_path) == "no baseline was noted when class.up took the snapshot"
