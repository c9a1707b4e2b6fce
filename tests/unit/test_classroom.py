"""A class without an engine: lab names, rosters, growth, placement, limits, cards, secrets, the door."""

from __future__ import annotations

import base64
import hashlib
import math
import os
import re
import subprocess
from html.parser import HTMLParser

import pytest

from orchestrator.classroom import cards, door, placement, records
from orchestrator.classroom import roster as rosters
from orchestrator.classroom.display import ClassDisplay, LabLine
from orchestrator.classroom.lifecycle import (
    CLASS_LIMITS,
    SECRET_BYTES,
    with_class_limits,
)
from provision.errors import LabError, SpecError, UsageError
from provision.providers.docker.node_container import limit_options
from provision.providers.libvirt import domains
from provision.spec import load as spec_load
from provision.spec import validation
from provision.spec.model import LimitsSpec, memory_bytes

# -- naming and rosters ------------------------------------------------------------------------


def test_counted_class_labs_are_named_after_seats():
    students = rosters.counted("ws", 12)
    assert [s.lab for s in students[:2]] == ["ws-s01", "ws-s02"] and students[-1].lab == "ws-s12"
    assert all(spec_load.from_mapping({"name": s.lab}).name == s.lab for s in students)
    assert validation.problems(spec_load.from_mapping({"name": students[-1].lab})) == []


@pytest.mark.parametrize("name", ["Bad", "9class", "a" * 28, ""])
def test_class_names_that_cannot_make_lab_names_are_refused(name):
    with pytest.raises(UsageError):
        rosters.check_class_name(name)


def test_roster_names_become_distinct_lab_names_that_fit(tmp_path):
    path = tmp_path / "roster.txt"
    path.write_text("# spring workshop\nAda Lovelace\n\nZoë O'Brien  # late\nada lovelace\n42\n"
                    "Maximilian Alexander Longname-Smith\n", encoding="utf-8")
    names = rosters.read_roster(path)
    assert names == ["Ada Lovelace", "Zoë O'Brien", "ada lovelace", "42", "Maximilian Alexander Longname-Smith"]
    students = rosters.from_roster("ws", names)
    assert [s.id for s in students[:4]] == ["ada-lovelace", "zoe-obrien", "s03", "s04"]  # a clash, no letter
    assert len({s.lab for s in students}) == len(students)
    assert all(len(s.lab) <= 31 and validation.NAME_RE.fullmatch(s.lab) for s in students)
    assert students[1].name == "Zoë O'Brien"


def test_an_empty_or_missing_roster_is_refused(tmp_path):
    (tmp_path / "empty").write_text("# nobody\n")
    with pytest.raises(UsageError, match="no student"):
        rosters.from_roster("ws", rosters.read_roster(tmp_path / "empty"))
    with pytest.raises(UsageError, match="cannot read the roster"):
        rosters.read_roster(tmp_path / "missing")


def test_a_class_grows_at_the_end_and_never_shrinks():
    three = rosters.counted("ws", 3)
    assert rosters.grown(three, rosters.counted("ws", 5), "ws")[3:] == rosters.counted("ws", 5)[3:]
    assert rosters.grown(three, rosters.counted("ws", 3), "ws") == three
    with pytest.raises(UsageError) as caught:
        rosters.grown(three, rosters.counted("ws", 2), "ws")
    assert "does not shrink" in str(caught.value) and "s03" in str(caught.value)
    assert "class.down" in caught.value.hint


# -- placement ---------------------------------------------------------------------------------


def host(name, mb):
    return placement.ClassHost(name, None if name == "local" else {"DOCKER_HOST": f"ssh://u@{name}"}, mb)


def test_labs_go_to_the_host_with_the_most_free_memory():
    chosen = placement.place(["a", "b", "c", "d"], 1000, [host("local", 2500), host("big", 4000)])
    assert [chosen[lab].name for lab in "abcd"] == ["big", "big", "local", "big"]


def test_placed_labs_stay_and_count_against_their_host():
    chosen = placement.place(["a", "b"], 1000, [host("local", 2000), host("big", 2000)], {"a": "local"})
    assert chosen["a"].name == "local" and chosen["b"].name == "big"


def test_a_lab_that_fits_nowhere_is_refused_saying_what_is_free():
    with pytest.raises(LabError) as caught:
        placement.place(["a", "b"], 1500, [host("local", 2000)])
    assert "lab b needs 1500 MiB" in str(caught.value) and "local: 500 MiB free" in str(caught.value)


def test_class_defaults_fit_twenty_five_node_labs_in_24_gb():
    five = with_class_limits(spec_load.from_mapping({}))
    need = placement.lab_memory_mb(five)
    local = host("local", 24 * 1000 ** 3 // 2 ** 20 - placement.HOST_RESERVE_MB)
    chosen = placement.place([f"ws-s{i:02d}" for i in range(1, 21)], need, [local])
    assert len(chosen) == 20
    assert five.limits == CLASS_LIMITS and memory_bytes(CLASS_LIMITS.memory) * 100 < 22 * 1000 ** 3


def test_a_template_keeps_its_own_limits():
    spec = with_class_limits(spec_load.from_mapping({"limits": {"memory": "1g"}}))
    assert spec.limits == LimitsSpec("1g", CLASS_LIMITS.cpus, CLASS_LIMITS.pids)


# -- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, size", [("", 0), ("512m", 512 << 20), ("1g", 1 << 30), ("1GiB", 1 << 30),
                                        ("2048k", 2 << 20), ("100000000", 100000000), ("lots", None), ("1t", None)])
def test_memory_sizes(text, size):
    assert memory_bytes(text) == size


def test_limits_are_validated_all_at_once():
    with pytest.raises(SpecError) as caught:
        validation.validate(spec_load.from_mapping({"limits": {"memory": "64m", "cpus": 0.001, "pids": 50}}))
    assert len(caught.value.problems) == 3
    with pytest.raises(SpecError, match="limits.cpus must be a number"):
        spec_load.from_mapping({"limits": {"cpus": "half"}})
    with pytest.raises(SpecError, match="unknown key 'swap' in limits"):
        spec_load.from_mapping({"limits": {"swap": "1g"}})
    assert validation.validate(spec_load.from_mapping({"limits": {"memory": "224m", "cpus": 0.5, "pids": 1024}})) == []


def test_limits_survive_the_state_files_round_trip():
    spec = spec_load.from_mapping({"limits": {"memory": "300m", "cpus": 1.5, "pids": 700}})
    assert spec_load.from_mapping(spec_load.to_mapping(spec)).limits == spec.limits


def test_the_docker_provider_turns_limits_into_host_config():
    assert limit_options(LimitsSpec()) == {}
    assert limit_options(LimitsSpec("224m", 0.5, 1024)) == {
        "mem_limit": 224 << 20, "memswap_limit": 224 << 20, "nano_cpus": 500_000_000, "pids_limit": 1024}


def test_libvirt_sizes_vms_from_limits():
    assert (domains.memory_mib(LimitsSpec()), domains.vcpus(LimitsSpec())) == (domains.MEMORY_MIB, domains.VCPUS)
    assert (domains.memory_mib(LimitsSpec("1g")), domains.vcpus(LimitsSpec(cpus=1.5))) == (1024, 2)


# -- secrets, door, cards ----------------------------------------------------------------------


def test_secrets_are_long_random_and_private(swarmdeck_home):
    import secrets as random
    values = {f"ws-s{i:02d}": random.token_urlsafe(SECRET_BYTES) for i in range(1, 21)}
    assert SECRET_BYTES * 8 >= 128 and len(set(values.values())) == 20
    assert all(len(v) * 6 >= 128 for v in values.values())
    records.write_secrets("ws", values)
    path = records.class_dir("ws") / "secrets.json"
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.stat(path.parent).st_mode & 0o777 == 0o700
    assert records.read_secrets("ws") == values


def test_the_door_keeps_only_a_hash_of_the_secret():
    secret = "correct-horse-battery-staple-0123"
    hashed = door.password_hash(secret)
    assert hashed.startswith("$6$") and secret not in hashed
    salt = hashed.split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=secret,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert again == hashed and door.password_hash(secret) != hashed  # salted
    assert "PasswordAuthentication yes" in door.SSHD_CONFIG and "PermitRootLogin no" in door.SSHD_CONFIG
    assert "AllowTcpForwarding no" in door.SSHD_CONFIG


def test_the_door_fingerprint_is_what_ssh_shows(tmp_path):
    pair = door.keys.ensure_keypair(tmp_path / "door", "door@x")
    shown = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "door.pub")], capture_output=True, text=True)
    if shown.returncode == 0:
        assert door.fingerprint(pair.public_line) == shown.stdout.split()[1]
    blob = base64.b64decode(pair.public_line.split()[1])
    assert door.fingerprint(pair.public_line).startswith("SHA256:") and hashlib.sha256(blob)


class CardParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.pages, self.cards, self.secrets, self.svgs, self._secret = 0, [], [], 0, False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "section" and attributes.get("class") == "page":
            self.pages += 1
        if tag == "article":
            self.cards.append(attributes["data-lab"])
        if tag == "span" and attributes.get("class") == "secret":
            self._secret = True
        if tag == "svg":
            self.svgs += 1

    def handle_data(self, data):
        if self._secret:
            self.secrets.append(data)
            self._secret = False


def a_class(count: int, names=None) -> tuple[records.ClassRecord, dict[str, str]]:
    students = rosters.from_roster("ws", names) if names else rosters.counted("ws", count)
    record = records.ClassRecord("ws", spec_load.to_mapping(spec_load.from_mapping({"managers": 1, "workers": 1})),
                                 "192.0.2.7", [records.Seat(s.id, s.name, s.lab, door_port=2201 + i)
                                               for i, s in enumerate(students)])
    return record, {s.lab: f"secret-{i:02d}-{'x' * 20}" for i, s in enumerate(record.seats)}


def test_cards_are_eight_to_a_page_one_per_student():
    record, secrets = a_class(11)
    parser = CardParser()
    parser.feed(cards.html("ws", cards.cards_for(record, secrets)))
    assert parser.pages == math.ceil(11 / cards.PER_PAGE) == 2
    assert parser.cards == [s.lab for s in record.seats] and parser.svgs == 11
    assert parser.secrets == [secrets[s.lab] for s in record.seats]
    text = cards.html("ws", cards.cards_for(record, secrets))
    assert "ssh -p 2201 student@192.0.2.7" in text and "@page { size: A4" in text and "No web portal yet" in text


def test_a_card_escapes_the_students_name():
    record, secrets = a_class(0, ["Bobby <script>alert(1)</script> Tables"])
    text = cards.html("ws", cards.cards_for(record, secrets))
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_the_qr_code_is_the_ssh_address():
    record, secrets = a_class(1)
    card = cards.cards_for(record, secrets)[0]
    assert card.uri == "ssh://student@192.0.2.7:2201"
    assert re.search(r"<svg[^>]*>", card.qr) and card.qr == cards.qr_svg(card.uri)


def test_a_seat_without_secret_is_an_error():
    record, _ = a_class(2)
    with pytest.raises(LabError, match="has no secret"):
        cards.cards_for(record, {})


# -- the progress display ----------------------------------------------------------------------


def test_a_lab_line_moves_through_its_phases(capsys):
    import io

    from rich.console import Console
    out = io.StringIO()
    display = ClassDisplay(["ws-s01"], {}, Console(file=out, force_terminal=False))
    line = LabLine(display, "ws-s01")
    for title in ("machines for lab ws-s01 (docker) ...", "host setup over SSH ...", "forming the swarm ..."):
        line.emit("step", title)
    line.emit("changed", "node worker1 created")
    display.set("ws-s01", phase="ready", state="ready")
    assert out.getvalue().splitlines() == ["ws-s01: machines working", "ws-s01: setup working", "ws-s01: swarm working",
                                           "ws-s01: ready ready"]
    assert line.changes == ["node worker1 created"]
