"""Find the Debian mirror this machine already uses, from its apt sources.

swarmdeck never hard-codes a mirror: it reads ``/etc/apt/sources.list`` and
``/etc/apt/sources.list.d/`` (one-line and deb822 formats), or takes ``--mirror``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from provision import hints
from provision.errors import ImageError

APT = Path("/etc/apt")


@dataclass(frozen=True)
class Source:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def read_sources(root: Path = APT) -> list[Source]:
    sources: list[Source] = []
    files = [root / "sources.list"] + sorted((root / "sources.list.d").glob("*"))
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            sources += parse_deb822(text)
        elif path.suffix == ".list" or path.name == "sources.list":
            sources += parse_one_line(text)
    return sources


def parse_one_line(text: str) -> list[Source]:
    found = []
    for line in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0])  # drop "[arch=... signed-by=...]"
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            found.append(Source(words[1], (words[2],), tuple(words[3:])))
    return found


def parse_deb822(text: str) -> list[Source]:
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            found.append(Source(uri, tuple(fields.get("suites", "").split()), tuple(fields.get("components", "").split())))
    return found


def debian_mirror(suite: str, sources: list[Source] | None = None) -> str:
    """The URI of a Debian archive serving ``suite`` with component main.

    Raises:
        ImageError: when no apt source serves it, with a hint to pass ``--mirror``.
    """
    sources = read_sources() if sources is None else sources
    for source in sources:
        if suite in source.suites and "main" in source.components and "security" not in source.uri:
            return source.uri
    raise ImageError(
        f"no apt source of this machine serves Debian {suite!r} main "
        f"(looked in {APT}/sources.list and {APT}/sources.list.d/)",
        hint=f"pass the Debian mirror to use, e.g. {hints.command('image.build', '--mirror', 'http://MIRROR/debian')}",
    )

