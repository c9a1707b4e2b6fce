"""The task tree: clean exits for lab errors, the documented tasks, the swarmdeck command; and
no paramiko traceback on the console while an sshd starts."""

import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Context, Exit

from provision.errors import LabError


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
                     "registry.push", "registry.ls", "image.build", "image.demo", "image.tutorial"):
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
