"""Where swarmdeck keeps state on the machine that runs it.

``$SWARMDECK_HOME`` (default ``$XDG_DATA_HOME/swarmdeck`` or
``~/.local/share/swarmdeck``) holds one folder per lab with its SSH key,
known_hosts, TLS material and reports. Nothing there is ever committed.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"
# A saved demo report's name in a lab's reports/ folder: DEMO-YYYYmmdd-HHMMSS (.json, .png);
# here because both the demo plots and the visualizer (which runs alone in its stand-in image,
# with this module and the docker SDK only) read them.
REPORT_NAME = r"[a-z-]+-\d{8}-\d{6}"


def home() -> Path:
    if os.environ.get("SWARMDECK_HOME"):
        return Path(os.environ["SWARMDECK_HOME"])
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "swarmdeck"


def lab_dir(lab: str) -> Path:
    return home() / "labs" / lab


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) and its parents; return it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path
