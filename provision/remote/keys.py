"""SSH material of a lab: the lab's client key, each node's host key, known_hosts.

Node host keys are made here and placed on the node at first boot (as cloud-init
does for VMs), so the lab's known_hosts is exact from the start: host keys are
checked, never accepted blindly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provision.paths import ensure_private_dir, lab_dir
from provision.state import write_atomically

# Nodes are prepared in parallel threads; each key must be made once. Across processes,
# the runs that make keys (lab.up, lab.add) hold the lab's lock (provision.state).
_lock = threading.Lock()


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_line: str  # "ssh-ed25519 AAAA... comment"

    @property
    def private_text(self) -> str:
        return self.private_path.read_text()


def ssh_dir(lab: str) -> Path:
    return ensure_private_dir(lab_dir(lab) / "ssh")


def ensure_keypair(path: Path, comment: str) -> KeyPair:
    """Create an ed25519 key pair at ``path`` (0600) unless it exists; return it."""
    public = path.with_suffix(".pub")
    with _lock:
        if not path.exists() or not public.exists():
            _generate(path, public, comment)
    return KeyPair(path, public.read_text().strip())


def _generate(path: Path, public: Path, comment: str) -> None:
    key = Ed25519PrivateKey.generate()
    private_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public_bytes = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    ensure_private_dir(path.parent)
    # each file whole or not at all (a temporary file renamed): an interrupted run leaves no
    # half key, and the public half is written last, so a missing one means "make both anew"
    write_atomically(path, private_bytes, 0o600)
    write_atomically(public, f"{public_bytes.decode()} {comment}\n".encode(), 0o644)




def lab_key(lab: str) -> KeyPair:
    """The key swarmdeck logs in with on every node of ``lab``."""
    return ensure_keypair(ssh_dir(lab) / "id_ed25519", f"swarmdeck-{lab}")


def host_key(lab: str, node: str) -> KeyPair:
    """The SSH host key of ``node``."""
    return ensure_keypair(ssh_dir(lab) / "hosts" / f"{node}_ed25519", f"root@{node}")


def known_hosts_path(lab: str) -> Path:
    return ssh_dir(lab) / "known_hosts"


def write_known_hosts(lab: str, entries: dict[str, tuple[str, str]]) -> Path:
    """Write known_hosts from ``{node: (address, public host key line)}``."""
    lines = []
    for node, (address, public_line) in sorted(entries.items()):
        key_type, key_data = public_line.split()[:2]
        lines.append(f"{address},{node} {key_type} {key_data}")
    path = known_hosts_path(lab)
    write_atomically(path, ("\n".join(lines) + "\n").encode(), 0o600)
    return path


def read_known_hosts(lab: str) -> dict[str, tuple[str, str]]:
    """``{node: (address, "type base64")}`` from the lab's known_hosts (empty when none)."""
    try:
        text = known_hosts_path(lab).read_text()
    except OSError:
        return {}
    entries = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and "," in parts[0]:
            address, node = parts[0].split(",", 1)
            entries[node] = (address, f"{parts[1]} {parts[2]}")
    return entries


def record_host_key(lab: str, node: str, address: str, public_line: str) -> None:
    """Add or replace one node's entry in the lab's known_hosts (keys learnt on first use)."""
    with _lock:  # machines are adopted in parallel
        entries = read_known_hosts(lab)
        entries[node] = (address, public_line)
        write_known_hosts(lab, entries)


def remove_host_key(lab: str, node: str) -> None:
    """Forget a removed node's host key (a node added later under that name gets a new one)."""
    for path in (ssh_dir(lab) / "hosts").glob(f"{node}_ed25519*"):
        path.unlink()
    with _lock:
        entries = read_known_hosts(lab)
        if entries.pop(node, None) is not None:
            write_known_hosts(lab, entries)
