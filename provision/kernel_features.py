"""What the nodes' kernel offers Swarm's networking: IPVS (the routing mesh and service VIPs)
and IPsec ESP (encrypted overlay networks).

Container nodes share this machine's kernel. Without IPVS, overlay networks,
``--endpoint-mode dnsrr`` and host-mode ports still work. Without ESP, Docker creates an
encrypted overlay (``--opt encrypted``) and starts its tasks, but can install no IPsec
state: its engine logs ``Failed Adding ... SA ...: function not implemented`` and drops the
traffic between nodes (where xfrm_user is missing too, it refuses the tasks: "cannot join
secure network: required modules to install IPSEC rules are missing on host").

A kernel is judged from the same facts wherever they are read: this machine's files
(``local_facts``, for lab.doctor) or a node's, over SSH (``PROBE`` and ``parse_probe``).
"""

from __future__ import annotations

import gzip
import platform
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/")
# (kernel option, its module) that encrypted overlays need: ESP itself, and the XFRM
# netlink family through which Docker installs the IPsec state and policies.
IPSEC = (("CONFIG_INET_ESP", "esp4"), ("CONFIG_XFRM_USER", "xfrm_user"))
LOADED, BUILT_IN, LOADABLE, ABSENT = "loaded", "built in", "loadable", "absent"
AVAILABLE, MISSING, UNKNOWN = "available", "missing", "unknown"
_CONFIG_LINE = re.compile(r"^(?:(CONFIG_\w+)=(\S+)|# (CONFIG_\w+) is not set)$")


def module_state(module: str, release: str | None = None, root: Path = ROOT) -> str:
    """loaded | built in | loadable (a file under /lib/modules) | absent."""
    if (root / "sys/module" / module).exists():
        return LOADED
    base = root / "lib/modules" / (release or platform.release())
    builtin = base / "modules.builtin"
    if builtin.exists() and f"/{module}.ko" in builtin.read_text():
        return BUILT_IN
    if base.exists() and any(base.rglob(f"{module}.ko*")):
        return LOADABLE
    return ABSENT


def module_present(module: str, release: str | None = None) -> bool:
    """Loaded, built in, or loadable from /lib/modules."""
    return module_state(module, release) != ABSENT


def available() -> bool:
    return module_present("ip_vs")


@dataclass(frozen=True)
class KernelFacts:
    """What one kernel shows about the options and modules asked for."""

    release: str
    config_source: str  # /proc/config.gz, /boot/config-RELEASE, or "" when no config was readable
    config: dict[str, str]  # option -> y | m | n ("is not set"); an option the config lacks is absent
    modules: dict[str, str]  # module -> loaded | built in | loadable | absent


@dataclass(frozen=True)
class Support:
    state: str  # available | missing | unknown
    reason: str
    missing: tuple[str, ...] = ()  # the kernel options found not set

    @property
    def available(self) -> bool:
        return self.state == AVAILABLE


def parse_config(text: str, options: list[str]) -> dict[str, str]:
    """``{option: y|m|n}`` for those of ``options`` that a kernel config names."""
    found = {}
    for line in text.splitlines():
        match = _CONFIG_LINE.match(line.strip())
        if not match:
            continue
        option = match.group(1) or match.group(3)
        if option in options:
            found[option] = match.group(2) or "n"
    return found


def local_facts(options=IPSEC, root: Path = ROOT, release: str | None = None) -> KernelFacts:
    """This machine's kernel (``root`` is another folder holding proc/, boot/, sys/ and lib/ in tests)."""
    release = release or platform.release()
    names = [option for option, _ in options]
    source, text = "", ""
    config_gz, boot = root / "proc/config.gz", root / "boot" / f"config-{release}"
    try:
        if config_gz.exists():
            source, text = "/proc/config.gz", gzip.decompress(config_gz.read_bytes()).decode(errors="replace")
        elif boot.exists():
            source, text = f"/boot/config-{release}", boot.read_text(errors="replace")
    except (OSError, EOFError, gzip.BadGzipFile):
        source, text = "", ""
    return KernelFacts(release, source, parse_config(text, names),
                       {module: module_state(module, release, root) for _, module in options})


def probe_command(options=IPSEC) -> str:
    """A shell command that prints a node's kernel facts (``parse_probe`` reads them)."""
    names = "|".join(option.removeprefix("CONFIG_") for option, _ in options)
    modules = " ".join(module for _, module in options)
    return (
        'r=$(uname -r); echo "release=$r"; '
        'if [ -r /proc/config.gz ]; then echo "config-source=/proc/config.gz"; zcat /proc/config.gz; '
        'elif [ -r "/boot/config-$r" ]; then echo "config-source=/boot/config-$r"; cat "/boot/config-$r"; fi '
        f"| grep -E '^(config-source=|CONFIG_({names})=|# CONFIG_({names}) is not set)'; "
        f"for m in {modules}; do "
        'if [ -d "/sys/module/$m" ]; then s=loaded; '
        'elif grep -qs "/$m.ko" "/lib/modules/$r/modules.builtin"; then s=builtin; '
        'elif [ -n "$(find "/lib/modules/$r" -name "$m.ko*" 2>/dev/null | head -n 1)" ]; then s=loadable; '
        'else s=absent; fi; echo "module $m $s"; done'
    )


def parse_probe(output: str, options=IPSEC) -> KernelFacts:
    """The facts ``probe_command`` printed on a node."""
    release, source, modules = "", "", {}
    for line in output.splitlines():
        if line.startswith("release="):
            release = line.removeprefix("release=").strip()
        elif line.startswith("config-source="):
            source = line.removeprefix("config-source=").strip()
        elif line.startswith("module "):
            _, module, state = (line.split(None, 2) + ["", ""])[:3]
            modules[module] = BUILT_IN if state.strip() == "builtin" else state.strip()
    config = parse_config(output, [option for option, _ in options])
    return KernelFacts(release, source, config, {m: modules.get(m, ABSENT) for _, m in options})


def _one(facts: KernelFacts, option: str, module: str) -> Support:
    state, value = facts.modules.get(module, ABSENT), facts.config.get(option)
    if state in (LOADED, BUILT_IN):
        return Support(AVAILABLE, f"{module} is {state}")
    if value == "y":
        return Support(AVAILABLE, f"{option}=y (built in)")
    if value == "m":
        return Support(AVAILABLE, f"{option}=m: the kernel loads {module} when Docker asks for it")
    if value == "n":
        return Support(MISSING, f"{option} is not set in {facts.config_source}, and there is no {module} module")
    if state == LOADABLE:
        return Support(AVAILABLE, f"module {module} can be loaded")
    where = facts.config_source or "no kernel config is readable (/proc/config.gz, /boot/config-RELEASE)"
    return Support(UNKNOWN, f"{where} names no {option}, and no {module} module is found")


def ipsec_support(facts: KernelFacts, options=IPSEC) -> Support:
    """Whether encrypted overlay networks can carry traffic on this kernel, and why (not)."""
    found = [_one(facts, option, module) for option, module in options]
    kernel = f"kernel {facts.release}" if facts.release else "the kernel"
    missing = [(option, s.reason) for (option, _), s in zip(options, found) if s.state == MISSING]
    if missing:
        return Support(MISSING, f"{kernel} lacks the IPsec ESP that encrypted overlays need: "
                       + "; ".join(reason for _, reason in missing), tuple(option for option, _ in missing))
    unknown = [s.reason for s in found if s.state == UNKNOWN]
    if unknown:
        return Support(UNKNOWN, f"cannot tell whether {kernel} has IPsec ESP: " + "; ".join(unknown))
    return Support(AVAILABLE, f"{kernel} has the IPsec ESP that encrypted overlays need: " + "; ".join(s.reason for s in found))
