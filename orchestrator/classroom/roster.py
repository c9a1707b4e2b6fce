"""Who is in a class and what their labs are called: ``NAME-s01``, ``NAME-s02``... for a count,
or one lab per line of a roster file, named after the student (``NAME-ada-lovelace``).

A class only grows: its students keep their order and their labs, a larger count or a longer
roster adds labs at the end, and fewer students than the class has are refused."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from provision.errors import UsageError
from provision.spec.model import NAME_RE

MAX_LAB_NAME = 31  # provision.spec.model.NAME_RE
SEAT_WIDTH = 2  # s01..s99; a class of 100 or more gets s100...


@dataclass(frozen=True)
class Student:
    id: str  # the seat ("s01") or the roster's slug ("ada-lovelace"): what class.reset takes
    name: str  # as the roster writes it ("Ada Lovelace"); the seat for a counted class
    lab: str


def check_class_name(name: str) -> None:
    # the longest lab name a counted class makes is NAME-s01: keep room for the seat
    if not NAME_RE.fullmatch(name) or len(name) > MAX_LAB_NAME - 4:
        raise UsageError(f"class name {name!r} is invalid: use 1-{MAX_LAB_NAME - 4} characters, lower-case "
                         "letters, digits and '-', starting with a letter (its labs are NAME-s01...)",
                         hint="pick another --class")


def seat(index: int) -> str:
    """The seat of the ``index``-th student (1-based): s01."""
    return f"s{index:0{SEAT_WIDTH}d}"


def counted(class_name: str, count: int) -> list[Student]:
    return [Student(seat(i), seat(i), f"{class_name}-{seat(i)}") for i in range(1, count + 1)]


def slug(text: str) -> str:
    """``Zoë O'Brien`` -> ``zoe-obrien``: lower-case ASCII letters, digits and '-'."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    plain = re.sub(r"['’]", "", plain)
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")


def read_roster(path: str | Path) -> list[str]:
    """The students of a roster file: one a line; blank lines and ``#`` comments skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read the roster {path}: {err.strerror}", hint="give a text file, one student a line") from err
    names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [n for n in names if n]


def from_roster(class_name: str, names: list[str]) -> list[Student]:
    """One student per name, each with a distinct lab name that fits a lab name's 31 characters
    (a clash or a name with no letters takes its seat number: ``NAME-s07``)."""
    room = MAX_LAB_NAME - len(class_name) - 1
    students, taken = [], set()
    for index, name in enumerate(names, start=1):
        ident = slug(name)[:room].rstrip("-")
        if not ident or not ident[0].isalpha() or ident in taken:
            ident = seat(index)
        taken.add(ident)
        students.append(Student(ident, name, f"{class_name}-{ident}"))
    if not students:
        raise UsageError("the roster names no student", hint="write one student a line")
    return students


def grown(existing: list[Student], wanted: list[Student], class_name: str) -> list[Student]:
    """The class's students after this class.up: the existing ones in their order, then the new.

    Raises:
        UsageError: when ``wanted`` leaves out a student the class has (a class does not shrink).
    """
    if not existing:
        return wanted
    known = {s.id for s in wanted}
    missing = [s for s in existing if s.id not in known]
    if missing:
        names = ", ".join(s.id for s in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise UsageError(
            f"class {class_name} has {len(existing)} students; this class.up asks for {len(wanted)} and "
            f"leaves out {names}: a class does not shrink",
            hint=f"keep --students {len(existing)} (or the roster's lines), reset a lab with class.reset, "
                 "or remove the whole class with class.down")
    have = {s.id for s in existing}
    return existing + [s for s in wanted if s.id not in have]
