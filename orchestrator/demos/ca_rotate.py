"""demo.ca-rotate: the swarm's two kinds of credentials renewed.

`docker swarm ca --rotate` makes a new root CA; Swarm reissues every node's TLS certificate
from it (through a cross-signed intermediate, so no node loses trust on the way) and then
trusts only the new root. Each node's certificate issuer is read before and after (its
``Description.TLSInfo``): every one changes, to the new root's key.

Join tokens are rotated as `swarm.tokens --rotate` does: a node that left and still holds
the old token is refused with Swarm's own message; the new token lets it join. Tokens stay in
memory and never reach the output or the report. The node is back (with its labels) at the
end, so the lab is whole.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from orchestrator import nodes, swarm
from orchestrator.demos.report import DemoReport
from orchestrator.session import LabSession
from orchestrator.views import live_entries, swarm_nodes
from provision.errors import LabError, SwarmError
from provision.wait import NotYet, wait_until

REFUSED_PREFIX = "could not join the swarm at "


@dataclass(frozen=True)
class Issuer:
    """Who signed a certificate, as Swarm reports it: base64 DER of the subject and of the
    public key (SubjectPublicKeyInfo)."""

    subject: str
    public_key: str

    @property
    def fingerprint(self) -> str:
        """``sha256:`` and 16 hex digits of the issuer's public key: what a person compares."""
        return "sha256:" + hashlib.sha256(base64.b64decode(self.public_key)).hexdigest()[:16]


def issuer_of(tls_info: dict) -> Issuer:
    """The issuer of a node's certificate, from its ``Description.TLSInfo``."""
    return Issuer(tls_info.get("CertIssuerSubject", ""), tls_info.get("CertIssuerPublicKey", ""))


def root_issuer(trust_root_pem: str) -> tuple[Issuer, str]:
    """The root CA certificate (PEM) as the issuer it is of the certificates it signs, and its
    subject as text (``CN=swarm-ca``)."""
    cert = x509.load_pem_x509_certificate(trust_root_pem.encode())
    key = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return (Issuer(base64.b64encode(cert.subject.public_bytes()).decode(), base64.b64encode(key).decode()),
            cert.subject.rfc4514_string())


def issuer_changes(before: dict[str, Issuer], after: dict[str, Issuer], root: Issuer) -> dict[str, str]:
    """Per node: ``changed`` (its issuer is another one now, the new root), ``unchanged``,
    ``changed to another CA`` (neither the old issuer nor the new root), ``new`` (it had no
    certificate before) or ``gone`` (it has none now)."""
    verdicts = {}
    for node in sorted(set(before) | set(after)):
        if node not in after:
            verdicts[node] = "gone"
        elif node not in before:
            verdicts[node] = "new"
        elif after[node] == before[node]:
            verdicts[node] = "unchanged"
        else:
            verdicts[node] = "changed" if after[node] == root else "changed to another CA"
    return verdicts


def node_issuers(lab: LabSession) -> dict[str, Issuer]:
    """Each node's (live entry's) certificate issuer."""
    found = {}
    for name, node in live_entries(swarm_nodes(lab.manager)).items():
        tls_info = (lab.manager.nodes.get(node.id).attrs.get("Description") or {}).get("TLSInfo") or {}
        found[name] = issuer_of(tls_info)
    return found


def cluster_root(lab: LabSession) -> str:
    lab.manager.swarm.reload()
    return (lab.manager.swarm.attrs.get("TLSInfo") or {}).get("TrustRoot", "")


def run(lab: LabSession, report: DemoReport, *, node: str | None = None) -> DemoReport:
    joiner = _choose_worker(lab, node)
    report.notes.append("Swarm's managers run a CA: every node proves who it is with a certificate from it, "
                        "renewed on its own (90 days by default). Rotating the root replaces the CA itself, "
                        "for instance after its key may have leaked. Join tokens hold a hash of the root CA "
                        "and a secret: a rotated token refuses new nodes that know only the old one.")
    old_root_pem = cluster_root(lab)
    old_root, subject = root_issuer(old_root_pem)
    before = node_issuers(lab)
    tokens_before = swarm.tokens(lab.manager)
    report.event(f"root CA {subject} {old_root.fingerprint}; the {len(before)} nodes' certificates are issued by "
                 + ", ".join(sorted({i.fingerprint for i in before.values()})))
    started = report.event("docker swarm ca --rotate")
    swarm.rotate_ca(lab.manager)
    wait_until(lambda: _rotated(lab), timeout=lab.plan.scaled(180), interval=0.5,
               describe="every node's certificate to be reissued from the new root CA")
    done = report.event("the rotation is done: every node holds a certificate of the new root, which alone is trusted")
    report.figure("CA rotation took", done - started, " s")
    new_root_pem = cluster_root(lab)
    new_root, _ = root_issuer(new_root_pem)
    after = node_issuers(lab)
    for name in sorted(after):
        was = before.get(name)
        report.event(f"{name}: issuer {was.fingerprint if was else '-'} -> {after[name].fingerprint}")
    verdicts = issuer_changes(before, after, new_root)
    changed = [n for n, v in verdicts.items() if v == "changed"]
    report.check("the root CA certificate is a new one", new_root_pem != old_root_pem and new_root != old_root,
                 f"{old_root.fingerprint} -> {new_root.fingerprint}")
    report.check("every node's certificate changed issuer, to the new root CA", len(changed) == len(verdicts) > 0,
                 ", ".join(f"{n} {v}" for n, v in verdicts.items()))
    report.figure("certificates reissued", len(changed))
    tokens_after = swarm.tokens(lab.manager)
    report.check("the CA rotation gave new join tokens too (a token carries the root CA's digest)",
                 tokens_after.worker != tokens_before.worker and tokens_after.manager != tokens_before.manager,
                 "compared in memory")
    _token_rotation(lab, report, joiner, new_root)
    return report


def _rotated(lab: LabSession) -> bool:
    pending = swarm.ca_rotation_pending(lab.manager)
    if pending:
        raise NotYet(f"waiting for {', '.join(pending)}")
    return True


def _choose_worker(lab: LabSession, wanted: str | None) -> str:
    """The node that leaves and joins again: ``wanted``, else the last worker."""
    workers = [n.name for n in lab.plan.nodes if not n.is_manager]
    if wanted is None and workers:
        return workers[-1]
    if wanted not in workers:
        raise LabError(f"demo.ca-rotate needs a worker to leave and join again; {wanted or 'lab ' + lab.plan.name} "
                       f"{'is not one' if wanted else 'has none'} (workers: {', '.join(workers) or 'none'})")
    return wanted


def _token_rotation(lab: LabSession, report: DemoReport, name: str, root: Issuer) -> None:
    labels = nodes.find(lab.manager, name).labels
    old = swarm.tokens(lab.manager)
    report.event(f"{name} leaves the swarm (docker swarm leave), remembering the worker join token")
    nodes.leave(lab, name)
    try:
        _refused_then_joined(lab, report, name, old, labels)
    except BaseException:
        if swarm.local_state(lab.clients[name]) == "inactive":
            nodes.join(lab, name, "worker")  # the lab stays whole whatever went wrong
        raise
    entry = nodes.find(lab.manager, name)
    tls_info = (lab.manager.nodes.get(entry.id).attrs.get("Description") or {}).get("TLSInfo") or {}
    report.check(f"{name} joined with the new token and got a certificate of the new root",
                 entry.state == "ready" and issuer_of(tls_info) == root and labels.items() <= entry.labels.items(),
                 f"{entry.state}, issuer {issuer_of(tls_info).fingerprint}")


def _refused_then_joined(lab: LabSession, report: DemoReport, name: str, old: swarm.JoinTokens,
                         labels: dict) -> None:
    swarm.rotate_tokens(lab.manager)
    new = swarm.tokens(lab.manager)
    rotated = report.event("swarm.tokens --rotate: new worker and manager join tokens (never shown here)")
    report.check("both join tokens changed", new.worker != old.worker and new.manager != old.manager,
                 "compared in memory")
    refused = _join_refused(lab, name, old.worker)
    report.event(f"{name} tries to join with the old worker token: refused ({refused})")
    report.check("a node holding the old token cannot join", bool(refused), refused or "it joined")
    nodes.join(lab, name, "worker")
    if labels:
        swarm.ensure_labels(lab.manager, nodes.find(lab.manager, name).id, labels)
    joined = report.event(f"{name} joins with the new worker token: it is a ready worker again"
                          + (f", labels {labels} restored" if labels else ""))
    report.figure("refused and rejoined within", joined - rotated, " s")


def _join_refused(lab: LabSession, name: str, token: str) -> str:
    """Swarm's message when ``name`` tries to join with ``token``; empty if it joined."""
    node = lab.plan.node(name)
    try:
        swarm.join(lab.clients[name], name, node.address, [lab.plan.first_manager.address], token,
                   swarm.member_ids(lab.manager))
    except SwarmError as err:
        message = str(err)
        return message.split(": ", 1)[1] if REFUSED_PREFIX in message and ": " in message else message
    nodes.leave(lab, name)  # it should not have joined: leave again, so that the new token is what brings it back
    return ""
