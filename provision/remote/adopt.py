"""Adopting a machine swarmdeck did not create (an existing server, a Vagrant VM).

Its SSH host key is learnt on first use and recorded in the lab's known_hosts (from
then on a changed key is refused, as for every node); swarmdeck logs in once with the
user's own account and key, authorizes the lab key for root (through ``sudo`` when that
account is not root), and from then on reaches it as root with the lab key, like every
other node, so host setup is the same code for every provider.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from pathlib import Path

import paramiko

from provision import hints
from provision.errors import HostUnreachable, SetupError
from provision.providers.base import SSHTarget
from provision.remote import keys
from provision.remote.host import Host, SSHHost, check
from provision.setup.engine_service import SYSTEMD_DROPINS
from provision.setup.hosts_file import markers
from provision.wait import NotYet, wait_until

DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"


def user_key(key: str) -> Path:
    """The private key file named in the spec, or the user's default one."""
    if key:
        path = Path(key).expanduser()
        if not path.is_file():
            raise SetupError(f"SSH key {key} does not exist", hint="fix the host's key in lab.yaml (hosts.NODE.key)")
        return path
    for name in DEFAULT_KEYS:
        path = Path.home() / ".ssh" / name
        if path.is_file():
            return path
    raise SetupError(f"no SSH key given and none of ~/.ssh/{{{','.join(DEFAULT_KEYS)}}} exists",
                     hint="set hosts.NODE.key in lab.yaml to the private key that logs in to that machine")


def scan_host_key(address: str, port: int = 22, timeout: float = 10) -> str:
    """The host key the SSH server at ``address`` offers, as "type base64"."""
    try:
        transport = paramiko.Transport((address, port))
    except OSError as err:
        raise HostUnreachable(f"no SSH server answers at {address}:{port}: {err}",
                              hint="is the machine up, and the address and port right?") from err
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    except (paramiko.SSHException, OSError, EOFError) as err:
        raise HostUnreachable(f"the SSH handshake with {address}:{port} failed: {err}") from err
    finally:
        transport.close()


def fingerprint(public_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of "type base64"."""
    digest = hashlib.sha256(base64.b64decode(public_line.split()[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def trust_host_key(lab: str, node: str, address: str, port: int = 22) -> tuple[str, bool]:
    """Learn (first use) or check the host key of ``node``; returns (fingerprint, learnt now)."""
    offered = scan_host_key(address, port)
    known = keys.read_known_hosts(lab).get(node)
    if known is not None and known[0] == address:
        if known[1].split()[:2] != offered.split()[:2]:
            raise SetupError(
                f"the SSH host key of {node} ({address}) changed: recorded {fingerprint(known[1])}, "
                f"offered {fingerprint(offered)}",
                hint=f"if the machine was reinstalled, {hints.command('lab.down', lab=lab)} forgets it; "
                     "otherwise someone may be in the middle: do not go on")
        return fingerprint(offered), False
    keys.record_host_key(lab, node, address, offered)
    return fingerprint(offered), True


def adopt(lab: str, node: str, target: SSHTarget, key_file: Path, *, timeout: float = 120) -> str:
    """Make ``node`` reachable as root with the lab key; say what was done ("running": nothing).

    The machine must answer SSH for ``target.user`` with ``key_file`` (that user needs
    passwordless sudo when not root) and allow root to log in with a key.
    """
    wait_until(lambda: _answers(target), timeout=timeout, interval=1, describe=f"SSH on {node} ({target.host})",
               hint="is the machine up, and the address and port right?")
    fingerprint, learnt = trust_host_key(lab, node, target.host, target.port)
    outcome = f"adopted, host key {fingerprint} learnt on first use" if learnt else "adopted"
    public_line = keys.lab_key(lab).public_line
    if _root_login_works(lab, node, target):
        return outcome if learnt else "running"
    user_host = SSHHost(lab, node, target, key_file=key_file)
    try:
        _authorize_for_root(user_host, target.user, public_line)
    finally:
        user_host.close()
    if not _root_login_works(lab, node, target):
        raise SetupError(f"{node} ({target.host}) refuses root logins with a key, even with the lab key authorized",
                         hint="allow them in its sshd_config: `PermitRootLogin prohibit-password`, "
                              "then `systemctl reload ssh`")
    return outcome


def _answers(target: SSHTarget) -> bool:
    try:
        scan_host_key(target.host, target.port, timeout=5)
        return True
    except HostUnreachable as err:
        raise NotYet(str(err)) from err


def _root_login_works(lab: str, node: str, target: SSHTarget) -> bool:
    host = SSHHost(lab, node, SSHTarget(target.host, target.port, "root"))
    try:
        return host.run("true").ok
    except HostUnreachable:
        return False
    finally:
        host.close()


def _authorize_for_root(host: Host, user: str, public_line: str) -> None:
    script = (f"mkdir -p -m 700 /root/.ssh && touch {AUTHORIZED_KEYS} && chmod 600 {AUTHORIZED_KEYS} && "
              f"(grep -qxF {shlex.quote(public_line)} {AUTHORIZED_KEYS} || "
              f"echo {shlex.quote(public_line)} >> {AUTHORIZED_KEYS})")
    if user == "root":
        check(host, script)
        return
    if not host.run("sudo -n true").ok:
        raise SetupError(f"{host.name}: user {user} cannot use sudo without a password",
                         hint=f"give {user} passwordless sudo (`{user} ALL=(ALL) NOPASSWD:ALL` in /etc/sudoers.d/), "
                              "or log in as root")
    check(host, f"sudo -n sh -c {shlex.quote(script)}")


def release(host: Host, lab: str, public_line: str) -> None:
    """Undo what adopting and host setup did, on a machine that stays (provider ssh's
    ``destroy``): leave the swarm, drop the lab's registry (and Docker Hub cache), engine
    config and key. The Docker engine package and any opened firewall ports stay."""
    begin, end = markers(lab)
    dropins = " ".join(shlex.quote(p) for p in SYSTEMD_DROPINS)
    check(host, "docker swarm leave --force >/dev/null 2>&1; docker rm -f registry registry-cache >/dev/null 2>&1; "
                "docker volume rm registry-data registry-cache-data >/dev/null 2>&1; "
                f"rm -rf /etc/docker/daemon.json /etc/docker/tls {dropins}; "
                f"sed -i {shlex.quote(f'/^{begin}$/,/^{end}$/d')} /etc/hosts; "
                "if [ -d /run/systemd/system ]; then "
                "systemctl daemon-reload; systemctl restart docker.socket docker; fi; "
                f"grep -vxF {shlex.quote(public_line)} {AUTHORIZED_KEYS} > {AUTHORIZED_KEYS}.swd || true; "
                f"cat {AUTHORIZED_KEYS}.swd > {AUTHORIZED_KEYS}; rm -f {AUTHORIZED_KEYS}.swd")
