"""The pure pieces of the security chapter: how a kernel's IPsec ESP is judged (fake /proc,
/boot, /sys and /lib/modules trees, and a node's probe output), lab.doctor's finding; the
unlock key kept out of every report while demo.autolock shows it; the comparison of
certificate issuers before and after a CA rotation; the SKIP verdict; the capture's counts;
and the swarm updates of autolock and the CA rotation, which keep every other setting."""

from __future__ import annotations

import base64
import datetime
import gzip
import json
import platform
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestrator import swarm
from orchestrator.demos import ca_rotate, encrypted_overlay
from orchestrator.demos.report import DemoReport
from orchestrator.tables import demo_summary
from provision import doctor
from provision import kernel_features as kernel
from provision.errors import SwarmError, redact
from provision.paths import lab_dir
from provision.progress import RecordingReporter
from provision.spec.model import SwarmSpec
from tests.unit.fake_swarm import World

RELEASE = "6.1.0-57-cloud-amd64"
# what this development machine's kernel shows (CONFIG_INET_ESP is not set), and a Debian VM's
HERE = "# CONFIG_INET_ESP is not set\nCONFIG_XFRM_USER=y\nCONFIG_VXLAN=y\n"
DEBIAN = "CONFIG_XFRM_USER=m\nCONFIG_INET_ESP=m\nCONFIG_INET_ESP_OFFLOAD=m\n"


def tree(tmp_path, *, config_gz: str | None = None, boot: str | None = None, loaded=(), files=(), builtin=(),
         release: str = RELEASE):
    """A fake root: proc/config.gz, boot/config-RELEASE, sys/module/NAME, lib/modules/RELEASE."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    if config_gz is not None:
        (tmp_path / "proc").mkdir()
        (tmp_path / "proc/config.gz").write_bytes(gzip.compress(config_gz.encode()))
    if boot is not None:
        (tmp_path / "boot").mkdir()
        (tmp_path / f"boot/config-{release}").write_text(boot)
    for module in loaded:
        (tmp_path / "sys/module" / module).mkdir(parents=True)
    modules = tmp_path / "lib/modules" / release
    for path in files:
        (modules / path).parent.mkdir(parents=True, exist_ok=True)
        (modules / path).write_bytes(b"\x7fELF")
    if builtin:
        modules.mkdir(parents=True, exist_ok=True)
        (modules / "modules.builtin").write_text("".join(f"kernel/net/{m}.ko\n" for m in builtin))
    return tmp_path


def judged(root) -> kernel.Support:
    return kernel.ipsec_support(kernel.local_facts(root=root, release=RELEASE))


def test_a_kernel_whose_config_does_not_set_inet_esp_lacks_esp_and_says_which_option(tmp_path):
    support = judged(tree(tmp_path, config_gz=HERE))
    assert support.state == kernel.MISSING and support.missing == ("CONFIG_INET_ESP",)
    assert "CONFIG_INET_ESP is not set in /proc/config.gz" in support.reason and RELEASE in support.reason
    assert "CONFIG_XFRM_USER" not in support.reason  # XFRM_USER=y: only what is missing is named


def test_esp_as_a_module_built_in_or_loaded_is_available(tmp_path):
    assert judged(tree(tmp_path / "a", boot=DEBIAN)).available  # =m: the kernel loads esp4 on demand
    assert judged(tree(tmp_path / "b", loaded=("esp4", "xfrm_user"))).available  # no config, both loaded
    found = judged(tree(tmp_path / "c", files=("kernel/net/ipv4/esp4.ko.xz",), builtin=("xfrm/xfrm_user",)))
    assert found.available and "esp4 can be loaded" in found.reason and "xfrm_user is built in" in found.reason
    # /proc/config.gz wins over /boot: it is the running kernel's own
    assert judged(tree(tmp_path / "d", config_gz=HERE, boot=DEBIAN)).state == kernel.MISSING


def test_without_config_or_module_the_answer_is_unknown_not_a_guess(tmp_path):
    assert judged(tree(tmp_path / "a")).state == kernel.UNKNOWN
    broken = tree(tmp_path / "b")
    (broken / "proc").mkdir()
    (broken / "proc/config.gz").write_bytes(b"not gzip")
    support = judged(broken)
    assert support.state == kernel.UNKNOWN and "no kernel config is readable" in support.reason


def test_without_xfrm_user_docker_refuses_the_tasks_and_the_demo_says_so(tmp_path):
    support = judged(tree(tmp_path, config_gz="CONFIG_INET_ESP=y\n# CONFIG_XFRM_USER is not set\n"))
    assert support.missing == ("CONFIG_XFRM_USER",)

    class Lab:
        class plan:  # noqa: N801 - stands for a LabPlan
            shares_kernel = True

    why = encrypted_overlay._why_not(Lab, {"worker1": support})
    assert "required modules to install IPSEC rules are missing on host" in why and "lab.doctor" in why
    why_esp = encrypted_overlay._why_not(Lab, {"worker1": judged(tree(tmp_path / "x", config_gz=HERE))})
    assert "function not implemented" in why_esp and "--provider libvirt" in why_esp


def test_a_nodes_probe_output_is_judged_like_local_files():
    here = ("release=6.18.44-fc-v769\nconfig-source=/proc/config.gz\nCONFIG_XFRM_USER=y\n"
            "# CONFIG_INET_ESP is not set\nmodule esp4 absent\nmodule xfrm_user absent\n")
    facts = kernel.parse_probe(here)
    assert facts == kernel.KernelFacts("6.18.44-fc-v769", "/proc/config.gz",
                                       {"CONFIG_XFRM_USER": "y", "CONFIG_INET_ESP": "n"},
                                       {"esp4": "absent", "xfrm_user": "absent"})
    assert kernel.ipsec_support(facts).state == kernel.MISSING
    vm = (f"release={RELEASE}\nconfig-source=/boot/config-{RELEASE}\nCONFIG_XFRM_USER=m\nCONFIG_INET_ESP=m\n"
          "module esp4 loadable\nmodule xfrm_user builtin\n")
    assert kernel.parse_probe(vm).modules == {"esp4": "loadable", "xfrm_user": "built in"}
    assert kernel.ipsec_support(kernel.parse_probe(vm)).available


def test_the_probe_command_runs_in_sh_and_prints_what_parse_probe_reads():
    output = subprocess.run(["sh", "-c", kernel.probe_command()], capture_output=True, text=True, timeout=60).stdout
    facts = kernel.parse_probe(output)
    assert facts.release == platform.release() and set(facts.modules) == {"esp4", "xfrm_user"}
    assert set(facts.modules.values()) <= {kernel.LOADED, kernel.BUILT_IN, kernel.LOADABLE, kernel.ABSENT}
    assert facts == kernel.local_facts()  # the same facts as lab.doctor reads here


def test_doctor_warns_without_esp_with_the_fix_and_is_ok_with_it(tmp_path):
    finding = doctor.check_ipsec(tree(tmp_path / "here", config_gz=HERE))
    assert finding.level == "warn" and finding.check == "ipsec"
    assert "CONFIG_INET_ESP is not set" in finding.observed and "demo.encrypted-overlay is skipped" in finding.observed
    assert "--provider libvirt" in finding.fix
    with_esp = doctor.check_ipsec(tree(tmp_path / "vm", boot=DEBIAN, release=platform.release()))
    assert with_esp.level == "ok" and "CONFIG_INET_ESP=m" in with_esp.observed


# -- the unlock key and the SKIP verdict -------------------------------------------------------------

KEY = "SWMKEY-1-" + base64.b64encode(bytes(range(32))).decode().rstrip("=")


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SWARMDECK_HOME", str(tmp_path))
    return tmp_path


def test_the_unlock_key_is_shown_once_and_saved_nowhere(home):
    reporter = RecordingReporter()
    report = DemoReport("autolock", "t1", reporter)
    report.show_secret(f"unlock key (shown here only, saved nowhere): {KEY}")
    report.event(f"a message that quotes the key by mistake: {KEY}")
    report.check("a check that sees it", True, f"seen {KEY}")
    report.notes.append(f"a note with {KEY}")
    report.write_live()
    json_path, _png = report.save()
    printed = [text for _, text in reporter.lines]
    assert sum(KEY in text for text in printed) == 1  # only the line show_secret printed
    assert KEY not in json_path.read_text() and "SWMKEY-<redacted>" in json_path.read_text()
    assert KEY not in (lab_dir("t1") / "reports" / "live.json").read_text()
    assert all(KEY not in text for _, text in report.events) and json.loads(json_path.read_text())["verdict"] == "pass"
    assert redact(f"key {KEY}.") == "key SWMKEY-<redacted>."


def test_a_swarm_that_refuses_a_key_raises_an_error_without_it():
    class Api:
        def unlock_swarm(self, key):
            import docker.errors
            raise docker.errors.APIError("401", explanation=f"swarm could not be unlocked: invalid key {key}")

    class Client:
        api = Api()

    with pytest.raises(SwarmError) as raised:
        swarm.unlock(Client(), KEY)
    assert KEY not in raised.value.user_message() and "invalid key" in str(raised.value)


def test_a_skipped_demo_is_neither_a_pass_nor_a_failure_and_says_why(home):
    report = DemoReport("encrypted-overlay", "t1", RecordingReporter())
    report.skip("kernel 6.18 lacks the IPsec ESP that encrypted overlays need")
    assert report.verdict == "skip" and not report.passed
    json_path, png_path = report.save()
    saved = json.loads(json_path.read_text())
    assert saved["verdict"] == "skip" and "lacks the IPsec ESP" in saved["skipped"]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "SKIP" in demo_summary("t1", [report]) and "lacks the IPsec ESP" in demo_summary("t1", [report])


def test_a_comparison_is_saved_and_plotted(home):
    report = DemoReport("handoff", "t1", RecordingReporter())
    report.event("docker node demote manager1")
    report.comparison = {"planned": {"new leader": 0.1, "write accepted": 0.2}, "killed": {"new leader": 14.0}}
    report.check("planned is quicker", True, "0.1 s against 14.0 s")
    json_path, png_path = report.save()
    saved = json.loads(json_path.read_text())
    assert saved["comparison"]["killed"] == {"new leader": 14.0} and saved["comparison_unit"] == "s"
    assert png_path.stat().st_size > 10_000


# -- certificate issuers -----------------------------------------------------------------------------


def a_ca(name: str = "swarm-ca") -> tuple[str, dict]:
    """A root CA certificate (PEM) and the TLSInfo of a node whose certificate it issued."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return pem, {"TrustRoot": pem, "CertIssuerSubject": base64.b64encode(subject.public_bytes()).decode(),
                 "CertIssuerPublicKey": base64.b64encode(spki).decode()}


def test_the_root_ca_is_the_issuer_swarm_reports_for_the_certificates_it_signed():
    pem, tls_info = a_ca()
    root, subject = ca_rotate.root_issuer(pem)
    assert root == ca_rotate.issuer_of(tls_info) and subject == "CN=swarm-ca"
    assert root.fingerprint.startswith("sha256:") and len(root.fingerprint) == len("sha256:") + 16


def test_issuer_changes_after_a_rotation_name_each_node():
    old_pem, old_tls = a_ca()
    new_pem, new_tls = a_ca()  # the same subject, CN=swarm-ca, with another key: as docker swarm ca --rotate makes
    _, other_tls = a_ca("another-ca")
    old, new, other = (ca_rotate.issuer_of(t) for t in (old_tls, new_tls, other_tls))
    root, _ = ca_rotate.root_issuer(new_pem)
    assert old.subject == new.subject and old != new and old.fingerprint != new.fingerprint
    before = {"manager1": old, "worker1": old, "worker2": old, "worker3": old}
    after = {"manager1": new, "worker1": old, "worker2": other, "worker4": new}
    assert ca_rotate.issuer_changes(before, after, root) == {
        "manager1": "changed", "worker1": "unchanged", "worker2": "changed to another CA", "worker3": "gone",
        "worker4": "new"}


# -- the capture's counts ----------------------------------------------------------------------------


def test_the_captures_line_is_read_whole_and_kinds_it_lacks_are_zero():
    assert encrypted_overlay.parse_counts("esp=12 marker=0 other=5 vxlan=0\n") == {
        "esp": 12, "vxlan": 0, "other": 5, "marker": 0}
    assert encrypted_overlay.parse_counts("vxlan=3") == {"esp": 0, "vxlan": 3, "other": 0, "marker": 0}


# -- swarm updates: autolock and the CA rotation keep every other setting --------------------------


def a_swarm() -> World:
    world = World({"manager1": "10.199.5.10"})
    swarm.init(world["manager1"], "10.199.5.10", SwarmSpec(dispatcher_heartbeat=0.5))
    return world


def test_autolock_is_turned_on_and_off_and_the_heartbeat_stays():
    world = a_swarm()
    client = world["manager1"]
    assert swarm.set_autolock(client, True) is True
    spec = world.cluster_of("manager1").spec
    assert spec["EncryptionConfig"] == {"AutoLockManagers": True} and spec["Dispatcher"]["HeartbeatPeriod"] == 500_000_000
    assert swarm.set_autolock(client, True) is False  # no write without a change
    assert swarm.set_autolock(client, False) is True
    assert world.cluster_of("manager1").spec["EncryptionConfig"] == {"AutoLockManagers": False}
    assert world.cluster_of("manager1").spec["Raft"]["ElectionTick"] == 10


def test_a_ca_rotation_asks_for_one_more_rotation_and_keeps_the_certificate_expiry():
    world = a_swarm()
    swarm.rotate_ca(world["manager1"])
    swarm.rotate_ca(world["manager1"])
    ca_config = world.cluster_of("manager1").spec["CAConfig"]
    assert ca_config == {"NodeCertExpiry": 7776000000000000, "ForceRotate": 2}
    assert world.cluster_of("manager1").spec["Dispatcher"]["HeartbeatPeriod"] == 500_000_000


def test_the_capture_and_request_windows_stretch_with_the_lab_pace_up_to_a_bound():
    assert encrypted_overlay.windows(1.0) == (6, 11)  # container nodes: as before
    assert encrypted_overlay.windows(0.5) == (6, 11)  # never shorter
    assert encrypted_overlay.windows(2.0) == (12, 22)
    assert encrypted_overlay.windows(6.0) == (18, 33)  # emulated VMs: at most three times as long
    capture, traffic = encrypted_overlay.windows(6.0)
    assert traffic > capture  # the requests outlast the capture, whenever it starts
