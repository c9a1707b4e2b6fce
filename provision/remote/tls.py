"""TLS material of a lab: a CA, one client certificate, one server certificate per node.

The nodes' engines listen on TCP 2376 with mutual TLS only, like docker-machine's:
the engine API is never exposed on TCP without TLS. ``lab.env`` points the docker
CLI at the client material.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provision.paths import ensure_private_dir, lab_dir
from provision.state import write_atomically

VALID_DAYS = 825
ENGINE_PORT = 2376
# Nodes are created in parallel threads; each lab must get exactly one CA. Across processes,
# the runs that issue certificates (lab.up, lab.add) hold the lab's lock (provision.state).
_lock = threading.RLock()


@dataclass(frozen=True)
class CertFiles:
    """A folder with ``ca.pem``, ``cert.pem`` and ``key.pem`` (docker's DOCKER_CERT_PATH layout)."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.folder / "cert.pem"

    @property
    def key(self) -> Path:
        return self.folder / "key.pem"

    def exists(self) -> bool:
        return self.ca.exists() and self.cert.exists() and self.key.exists()


def tls_dir(lab: str) -> Path:
    return ensure_private_dir(lab_dir(lab) / "tls")


def client_certs(lab: str) -> CertFiles:
    """The client certificate swarmdeck and ``lab.env`` use (created on first use)."""
    files = CertFiles(tls_dir(lab) / "client")
    with _lock:
        if not files.exists():
            _issue(lab, files, f"swarmdeck-{lab}-client", client=True)
    return files


def node_certs(lab: str, node: str, address: str) -> CertFiles:
    """The engine certificate of ``node``, valid for its name, its address and localhost."""
    files = CertFiles(tls_dir(lab) / "nodes" / node)
    with _lock:
        if not files.exists() or not _covers(files.cert, address):
            _issue(lab, files, node, names=[node, "localhost"], addresses=[address, "127.0.0.1"])
    return files


def _ca(lab: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    folder = tls_dir(lab)
    cert_path, key_path = folder / "ca.pem", folder / "ca-key.pem"
    with _lock:
        if not cert_path.exists() or not key_path.exists():
            _new_ca(lab, cert_path, key_path)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    return cert, key  # type: ignore[return-value]


def _new_ca(lab: str, cert_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"swarmdeck {lab} CA")])
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)  # last: the pair is complete


def _issue(lab, files: CertFiles, common_name, *, client=False, names=(), addresses=()) -> None:
    ca_cert, ca_key = _ca(lab)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = _builder(subject, ca_cert.subject, key.public_key()).add_extension(
        x509.ExtendedKeyUsage([usage]), critical=False
    )
    if names or addresses:
        alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    ensure_private_dir(files.folder)
    _write_key(files.key, key)
    write_atomically(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    write_atomically(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _covers(cert_path: Path, address: str) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ipaddress.ip_address(address) in alt.get_values_for_type(x509.IPAddress)


def _builder(subject, issuer, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # tolerate small clock skew
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def _write_key(path: Path, key) -> None:
    """A private key, 0600 from its first byte, whole or not at all (temporary file + rename)."""
    write_atomically(
        path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()), 0o600)


def remove_node_certs(lab: str, node: str) -> None:
    """Forget a removed node's engine certificate and key."""
    shutil.rmtree(tls_dir(lab) / "nodes" / node, ignore_errors=True)
