"""SSH keys, known_hosts and the lab's TLS material."""

import stat

from provision.remote import keys, tls


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
