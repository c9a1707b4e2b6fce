"""The one error hierarchy of swarmdeck.

Every error raised on purpose is a ``LabError``: it says what failed, what was
seen, and (in ``hint``) what to do next. Tasks turn it into ``invoke.Exit`` so
expected failures never print a traceback.
"""

from __future__ import annotations

import re

_SECRET = re.compile(r"SWM(TKN|KEY)-[A-Za-z0-9+/=-]+")


def redact(text: str) -> str:
    """Replace Swarm join tokens and unlock keys in ``text`` with a marker."""
    return _SECRET.sub("SWM\\1-<redacted>", text)


class LabError(Exception):
    """Base for every error swarmdeck raises on purpose (catch this one)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(redact(message))
        self.hint = redact(hint) if hint else None

    def user_message(self) -> str:
        """The message and hint as shown to a user."""
        text = str(self)
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class SpecError(LabError):
    """The lab spec is invalid; ``problems`` lists every problem found."""

    exit_code = 2

    def __init__(self, problems: list[str], *, hint: str | None = None):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the lab spec has {len(self.problems)} problem(s):\n{lines}", hint=hint)


class UsageError(LabError):
    """What the user typed names nothing swarmdeck knows (a node, a demo, a shell): exit code 2,
    like a wrong flag."""

    exit_code = 2


class NodeNotFound(LabError):
    """A node name that the lab does not have (a typo, most often); exit code 1, as docker's
    "No such node"."""

    def __init__(self, lab: str, node: str, known: list[str], *, hint: str | None = None):
        self.lab, self.node = lab, node
        super().__init__(f"no node {node!r} in lab {lab!r} (its nodes: {', '.join(known)})", hint=hint)


class ProviderUnavailable(LabError):
    """The backend (Docker engine, libvirt, vagrant) cannot be used here."""

    exit_code = 3


class ProviderError(LabError):
    """A backend call failed."""


class CommandFailed(LabError):
    """A command on a host exited non-zero."""

    def __init__(self, host: str, command: str, exit_code: int, output: str, *, hint: str | None = None):
        self.host, self.command, self.returncode = host, command, exit_code
        tail = "\n".join(output.strip().splitlines()[-10:])
        message = f"{host}: `{command}` exited {exit_code}"
        if tail:
            message += "\n" + "\n".join(f"    | {line}" for line in tail.splitlines())
        super().__init__(message, hint=hint)


class HostUnreachable(LabError):
    """A host did not answer over SSH."""


class SetupError(LabError):
    """A host cannot be set up as a lab node (no package manager, root login refused...)."""


class WaitTimeout(LabError):
    """Something we waited for did not happen in time."""

    exit_code = 4


class PartialFailure(LabError):
    """A step failed on some hosts; ``failures`` maps host name to its error."""

    def __init__(self, what: str, failures: dict[str, BaseException]):
        self.failures = failures
        lines = "\n".join(f"  {name}: {err}" for name, err in sorted(failures.items()))
        super().__init__(f"{what} failed on {len(failures)} host(s):\n{lines}")


class SwarmError(LabError):
    """A Swarm invariant does not hold (no leader, node in a foreign swarm...)."""


class ImageError(LabError):
    """A node or demo image could not be built or found."""


class LabUnhealthy(LabError):
    """The lab runs but is not whole: no manager answers, or a node is not ready (``lab.status``)."""

    exit_code = 5


class SubnetTaken(ProviderError):
    """The backend refused the lab network's subnet: another network holds it (or part of it)."""

    HINT = "choose a free range with --subnet (or network.subnet in lab.yaml), or remove the other network"

    def __init__(self, network: str, subnet: str, holders: dict[str, str]):
        self.network, self.subnet, self.holders = network, subnet, dict(holders)
        super().__init__(f"the lab network {network} cannot use subnet {self.overlap()}", hint=self.HINT)

    def overlap(self) -> str:
        """``10.199.2.0/24: it overlaps network 'x' (10.199.2.0/24)``."""
        held_by = (", ".join(f"network {name!r} ({other})" for name, other in sorted(self.holders.items()))
                   or "a network the backend does not list")
        return f"{self.subnet}: it overlaps {held_by}"


class Interrupted(LabError):
    """Ctrl-C while a failed run was cleaning up: the message says how to finish."""

    exit_code = 130  # 128 + SIGINT, as a shell reports it


class ConvergenceError(LabError):
    """A service did not reach the state asked for; the message carries Swarm's reason."""
