"""The lab as the top-level Vagrantfile reads it: ``swarmdeck-lab.json`` in Vagrant's folder
(``.vagrant/`` in the checkout, or ``$SWARMDECK_VAGRANT_DIR``). One Vagrant lab per folder."""

from __future__ import annotations

import json

from provision.plan import LabPlan, plan
from provision.providers.vagrant.commands import vagrant_dir

SPEC_JSON = "swarmdeck-lab.json"


def plan_all(part: LabPlan) -> LabPlan:
    """The plan of every node of the lab (``create`` may get only new ones: lab.add), since
    the Vagrantfile must describe them all."""
    return plan(part.spec, part.subnet, part.mtu)




def read() -> dict | None:
    try:
        return json.loads((vagrant_dir() / SPEC_JSON).read_text())
    except (OSError, ValueError):
        return None


def described_lab() -> str | None:
    data = read()
    return data.get("lab") if data else None


def forget(lab: str) -> None:
    """Remove the Vagrantfile's lab description if it still describes ``lab``."""
    if described_lab() == lab:
        (vagrant_dir() / SPEC_JSON).unlink(missing_ok=True)


