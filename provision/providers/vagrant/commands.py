"""Running Vagrant: its environment (no call home), the folder of its records, ``vagrant box``
away from the Vagrantfile, and python-vagrant, imported when used."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from provision.errors import ProviderUnavailable
from provision.paths import REPO

DIR_ENV = "SWARMDECK_VAGRANT_DIR"  # where the lab JSON and Vagrant's machine records go


def vagrant_env() -> dict[str, str]:
    """The environment for vagrant: no call home to HashiCorp's version check."""
    return {**os.environ, "VAGRANT_CHECKPOINT_DISABLE": "1"}


def vagrant_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or REPO / ".vagrant")


def box_command(*args: str) -> subprocess.CompletedProcess:
    """``vagrant box ARGS`` away from any Vagrantfile (ours refuses to load without a lab JSON)."""
    with tempfile.TemporaryDirectory(prefix="swarmdeck-vagrant-") as empty:
        return subprocess.run(["vagrant", "box", *args], capture_output=True, text=True, cwd=empty,
                              env={**vagrant_env(), "VAGRANT_CWD": empty})


def vagrant_lib():
    try:
        import vagrant  # noqa: PLC0415 - optional dependency, imported when used
    except ImportError as err:
        raise ProviderUnavailable("the vagrant provider needs python-vagrant",
                                  hint="`pip install -e '.[vagrant]'`") from err
    return vagrant
