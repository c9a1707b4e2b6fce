"""Student cards: one per student, 8 to an A4 page (HTML with print styles), and a PDF of it
made by headless Chromium's print-to-PDF. Each card has the lab, its nodes, how to connect (the
lab's SSH door on the instructor machine, door.py), a QR code of that SSH address, the door's
host key fingerprint and the student's secret. The files are 0600 and their text never logged.

There is no portal yet (a later release): the card says so, and its QR code is the SSH address."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import segno

from orchestrator.classroom import door, records
from provision.errors import LabError
from provision.render import render
from provision.spec import load as spec_load
from provision.state import write_atomically

PER_PAGE = 8
PORTAL = "No web portal yet: a later swarmdeck release adds one at this machine's address."
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@dataclass(frozen=True)
class Card:
    lab: str
    student: str
    nodes: list[str]
    address: str
    port: int
    secret: str
    fingerprint: str
    portal: str = PORTAL

    @property
    def first_node(self) -> str:
        return self.nodes[0]

    @property
    def uri(self) -> str:
        return f"ssh://student@{self.address}:{self.port}"

    @property
    def qr(self) -> str:
        """The QR code of ``uri``, as inline SVG."""
        return qr_svg(self.uri)


def qr_svg(text: str) -> str:
    return segno.make(text, error="m").svg_inline(scale=2, border=1)


def cards_for(record: records.ClassRecord, secrets: dict[str, str]) -> list[Card]:
    nodes = [n.name for n in spec_load.from_mapping(record.spec).nodes]
    cards = []
    for seat in record.seats:
        if seat.lab not in secrets:
            raise LabError(f"lab {seat.lab} has no secret in the class's records",
                           hint=f"run class.up --class {record.name} again")
        fingerprint = door.fingerprint(door.host_key(seat.lab).public_line)
        cards.append(Card(seat.lab, seat.name, nodes, records.door_address(record, seat), seat.door_port, secrets[seat.lab], fingerprint))
    return cards


def html(class_name: str, cards: list[Card]) -> str:
    pages = [cards[i:i + PER_PAGE] for i in range(0, len(cards), PER_PAGE)]
    return render("classroom/cards.html.j2", class_name=class_name, pages=pages)


def browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def pdf(html_path: Path, pdf_path: Path, timeout: float = 120) -> None:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium (0600)."""
    chromium = browser()
    if chromium is None:
        raise LabError("no Chromium to print the cards to PDF (the HTML cards are written)",
                       hint="apt-get install -y chromium, or print cards.html from a browser")
    with tempfile.TemporaryDirectory(prefix="swarmdeck-chromium-") as profile:
        partial = pdf_path.with_name(f".{pdf_path.name}.partial")
        argv = [chromium, "--headless", "--disable-gpu", "--no-pdf-header-footer", "--print-to-pdf-no-header",
                f"--user-data-dir={profile}", f"--print-to-pdf={partial}", html_path.resolve().as_uri()]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0 or not partial.is_file():
            raise LabError(f"Chromium did not print the cards (exit {done.returncode}): {done.stderr[-300:]}")
        os.chmod(partial, 0o600)
        partial.replace(pdf_path)


def write(name: str, out_dir: Path | None = None, *, make_pdf: bool = True) -> tuple[Path, Path | None, int]:
    """Write the class's cards (cards.html, cards.pdf) into ``out_dir`` (the class's records by
    default); returns the paths and the number of cards."""
    record = records.read(name)
    if record is None:
        raise LabError(f"no class named {name} on this machine", hint="class.up --students N --class NAME")
    cards = cards_for(record, records.read_secrets(name))
    folder = Path(out_dir) if out_dir else records.class_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    html_path = folder / "cards.html"
    write_atomically(html_path, html(name, cards).encode(), 0o600)
    pdf_path = folder / "cards.pdf" if make_pdf else None
    if pdf_path is not None:
        pdf(html_path, pdf_path)
    return html_path, pdf_path, len(cards)
