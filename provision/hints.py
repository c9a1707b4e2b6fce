"""How the user runs swarmdeck, so that every hint names the command they typed.

``swarmdeck TASK`` works from any folder; ``invoke TASK`` (or ``inv``) inside the checkout
runs the same tasks. Hints show whichever of them started this process.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROGRAMS = ("invoke", "inv")  # what the checkout's users may type instead of swarmdeck


def program() -> str:
    """``swarmdeck``, or ``invoke``/``inv`` when that is what started this process."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name in PROGRAMS else "swarmdeck"


def command(task: str, *args: str, lab: str | None = None) -> str:
    """A command line for a hint, in backquotes: `swarmdeck lab.down --lab web`."""
    words = [program(), task, *args, *(["--lab", lab] if lab else [])]
    return "`" + " ".join(words) + "`"
