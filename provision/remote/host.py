"""Hosts are command runners: a Fabric Connection with the lab's key and known_hosts.

Setup steps take a Host and know nothing about providers. Host keys are checked
against the lab's known_hosts (paramiko's RejectPolicy): an unknown or changed
key is an error, never silently accepted.
"""

from __future__ import annotations

import io
import logging
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from provision import hints
from provision.errors import CommandFailed, HostUnreachable
from provision.providers.base import SSHTarget
from provision.remote import keys, reach

T = TypeVar("T")
# paramiko logs a failed handshake (an sshd still starting) with its traceback and then
# raises the same error, which swarmdeck retries or reports. Without a handler of its own
# that log lands on stderr through Python's last-resort handler: keep it for applications
# that configure logging, off the console otherwise.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
COMMAND_TIMEOUT = 600  # seconds: no setup command takes this long; a hung one must not hang swarmdeck


@dataclass(frozen=True)
class Result:
    stdout: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Host(Protocol):
    name: str

    def run(self, command: str) -> Result:
        """Run ``command`` with sh; never raises for a non-zero exit."""

    def put(self, content: bytes, path: str, mode: int = 0o644) -> None:
        """Write ``content`` to ``path``."""

    def close(self) -> None: ...


def check(host: Host, command: str, *, hint: str | None = None) -> str:
    """Run ``command`` on ``host`` and return its output; raise CommandFailed on a non-zero exit."""
    result = host.run(command)
    if not result.ok:
        raise CommandFailed(host.name, command, result.exit_code, result.stdout, hint=hint)
    return result.stdout


def read_file(host: Host, path: str) -> str | None:
    """The text of ``path`` on ``host``, or None when it does not exist."""
    result = host.run(f"cat {shlex.quote(path)} 2>/dev/null")
    return result.stdout if result.ok else None


class TunneledConnection(Connection):
    """A Connection whose socket is a local port of the lab's tunnel (``provision.remote.reach``):
    paramiko is told the node's own address, so the host key is checked against it."""

    def __init__(self, *args, local: tuple[str, int], **kwargs):
        super().__init__(*args, gateway="tunnel", **kwargs)
        self.local = local

    def open_gateway(self):
        return socket.create_connection(self.local, timeout=self.connect_timeout)


class SSHHost:
    """A lab node reached over SSH with the lab's key (or ``key_file``), its host key checked;
    through the lab's tunnel when its network is not routable from here."""

    def __init__(self, lab: str, name: str, target: SSHTarget, *, connect_timeout: int = 10,
                 command_timeout: int = COMMAND_TIMEOUT, key_file: Path | None = None):
        self.name, self.command_timeout = name, command_timeout
        config = Config(overrides={"load_ssh_configs": False, "run": {"hide": True, "warn": True}})
        options = dict(user=target.user, port=target.port, config=config, connect_timeout=connect_timeout,
                       connect_kwargs={
                           "key_filename": str(key_file or keys.lab_key(lab).private_path),
                           "look_for_keys": False,
                           "allow_agent": False,
                       })
        local = reach.endpoint(lab, target.host, target.port)
        if local == (target.host, target.port):
            self.connection = Connection(target.host, **options)
        else:
            self.connection = TunneledConnection(target.host, local=local, **options)
        client = self.connection.client
        client.load_host_keys(str(keys.known_hosts_path(lab)))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())

    def run(self, command: str) -> Result:
        try:
            result = self.connection.run(command, hide=True, warn=True, in_stream=False,
                                         timeout=self.command_timeout)
        except CommandTimedOut as err:
            raise HostUnreachable(f"{self.name}: `{command[:80]}` did not finish within {self.command_timeout} s",
                                  hint=f"the node may be overloaded or hung: {hints.command('lab.status')}, its console log") from err
        except (paramiko.SSHException, OSError) as err:
            raise HostUnreachable(
                f"{self.name}: SSH to {self.connection.host} failed: {err}",
                hint=f"is the node running? {hints.command('lab.status')}; a changed host key means the node was "
                f"replaced: {hints.command('lab.down')} and up again",
            ) from err
        return Result(result.stdout + result.stderr, result.exited)

    def put(self, content: bytes, path: str, mode: int = 0o644) -> None:
        self.connection.put(io.BytesIO(content), remote=path)
        check(self, f"chmod {mode:o} {shlex.quote(path)}")

    def close(self) -> None:
        self.connection.close()
