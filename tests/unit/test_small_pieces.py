import io
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from invoke import Context, Exit

from provision import wait
from provision.errors import CommandFailed, LabError, SwarmError, WaitTimeout, redact
from provision.images import apt_mirror as mirror
from provision.lab_services import registry
from provision.providers.docker import runtime_profile as runtime
from provision.providers.docker.node_container import tar_of as _tar
from provision.remote import keys, tls
from provision.remote.node_files import File

# A made-up token, assembled so that secret scanners do not take it for a real one.
TOKEN = "SWM" + "TKN-1-" + "3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"


def test_tokens_and_keys_are_redacted_from_every_error():
    assert TOKEN not in redact(f"join {TOKEN} failed")
    err = SwarmError(f"join with {TOKEN} failed", hint=f"retry with {TOKEN}")
    assert "SWMTKN-<redacted>" in err.user_message() and TOKEN not in err.user_message()
    failed = CommandFailed("manager1", f"docker swarm join --token {TOKEN}", 1, f"bad {TOKEN}")
    assert TOKEN not in str(failed)
    assert "SWMKEY-<redacted>" in redact("SWM" + "KEY-1-abcdef")


def test_command_failed_keeps_the_last_lines():
    err = CommandFailed("n1", "false", 3, "\n".join(f"line{i}" for i in range(30)))
    assert "exited 3" in str(err) and "line29" in str(err) and "line5\n" not in str(err)


def test_wait_until_names_what_it_awaited_and_the_last_observation():
    now = [0.0]
    attempts = []

    def check():
        attempts.append(1)
        raise wait.NotYet(f"worker1=down (try {len(attempts)})")

    with pytest.raises(WaitTimeout) as caught:
        wait.wait_until(check, timeout=3, describe="nodes to be ready", hint="look at lab.status",
                        clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s), interval=1)
    message = caught.value.user_message()
    assert "waiting for nodes to be ready" in message and "worker1=down (try 4)" in message
    assert "hint: look at lab.status" in message


def test_wait_until_returns_the_first_truthy_value_and_passes_lab_errors():
    values = iter([None, 0, "yes"])
    assert wait.wait_until(lambda: next(values), timeout=5, describe="x", sleep=lambda s: None) == "yes"
    with pytest.raises(LabError, match="boom"):
        wait.wait_until(lambda: (_ for _ in ()).throw(LabError("boom")), timeout=5, describe="x")


def test_lab_key_is_private_and_known_hosts_pin_host_keys():
    pair = keys.lab_key("t1")
    assert stat.S_IMODE(pair.private_path.stat().st_mode) == 0o600
    assert pair.public_line.startswith("ssh-ed25519 ")
    assert keys.lab_key("t1") == pair  # made once, then reused
    host = keys.host_key("t1", "manager1")
    path = keys.write_known_hosts("t1", {"manager1": ("10.0.0.10", host.public_line)})
    line = path.read_text().strip()
    assert line.startswith("10.0.0.10,manager1 ssh-ed25519 ") and line.split()[2] == host.public_line.split()[1]


def test_node_certificates_cover_the_node_address_and_share_the_ca():
    from cryptography import x509
    certs = tls.node_certs("t1", "manager1", "10.0.0.10")
    cert = x509.load_pem_x509_certificate(certs.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "manager1" in names.get_values_for_type(x509.DNSName)
    assert stat.S_IMODE(certs.key.stat().st_mode) == 0o600
    assert certs.ca.read_bytes() == tls.client_certs("t1").ca.read_bytes()
    again = tls.node_certs("t1", "manager1", "10.0.0.20")  # a new address gets a new certificate
    assert again.cert.read_bytes() != cert.public_bytes(__import__("cryptography").hazmat.primitives.serialization.Encoding.PEM)


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


def test_tasks_turn_lab_errors_into_clean_exits(monkeypatch):
    import tasks
    monkeypatch.setattr(tasks.labs, "status", lambda name: (_ for _ in ()).throw(
        LabError("there is no lab named 'x'", hint="create it")))
    with pytest.raises(Exit) as caught:
        tasks.status(Context(), name="x")
    assert caught.value.code == 1 and "hint: create it" in str(caught.value.message)


def test_task_tree_has_the_documented_tasks():
    import tasks
    names = set(tasks.ns.task_names)
    for expected in ("lab.up", "lab.down", "lab.status", "lab.ssh", "lab.env", "lab.stop", "lab.start",
                     "lab.kill", "lab.doctor", "swarm.init", "swarm.status", "swarm.tokens",
                     "registry.push", "registry.ls", "image.build", "image.demo"):
        assert expected in names


def test_swarmdeck_command_works_outside_the_checkout(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    command = Path(sys.executable).with_name("swarmdeck")
    out = subprocess.run([str(command), "--list"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert "lab.up" in out and "swarm.tokens" in out
    missing = subprocess.run([str(command), "lab.up", "--managers", "0", "--name", "x"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "at least one manager" in missing.stderr


HANDSHAKE_FAILS = """
import socket, threading
import paramiko
import provision.remote.host  # noqa: F401 - what is tested: importing it keeps paramiko's log off stderr
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
def close_every_connection():
    while True:
        server.accept()[0].close()
threading.Thread(target=close_every_connection, daemon=True).start()
client = paramiko.SSHClient()
try:
    client.connect("127.0.0.1", port=server.getsockname()[1], username="x", password="x", banner_timeout=2)
except paramiko.SSHException as err:
    print("raised:", err)
"""


def test_an_sshd_still_starting_prints_no_paramiko_traceback():
    result = subprocess.run([sys.executable, "-c", HANDSHAKE_FAILS], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert "raised: Error reading SSH protocol banner" in result.stdout, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Exception (client)" not in result.stderr, result.stderr
