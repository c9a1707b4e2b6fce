"""Helpers of the tests that build real labs (integration, VM and contract tiers): the CLI as a
user runs it, lab names a session owns, lab views, and what the session-end checks read.

Every lab made here is named ``it-...`` and is removed by label after the session; an
``it-`` lab left by an earlier, killed session is swept first once it is two hours old
(younger ones may belong to a test session running alongside). Every CLI output is kept
for the secret scan that ends the session (tests/conftest.py).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import docker

from provision.paths import REPO
from provision.providers.docker import names as labels
from provision.remote.engine_clients import node_client

INVOKE = str(Path(sys.executable).with_name("invoke"))
OUTPUTS: list[tuple[list[str], str]] = []  # (argv, stdout+stderr) of every CLI call


def cli(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``invoke ARGS`` in the checkout, keeping its output for the secret scan."""
    argv = [INVOKE, *args]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    OUTPUTS.append((argv, result.stdout + result.stderr))
    # expected failures are LabErrors, shown as a message and a hint: a traceback is a bug
    assert "Traceback (most recent call last)" not in result.stderr, f"{' '.join(args)} crashed:\n{result.stderr}"
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def lab_resources(client: docker.DockerClient, lab: str) -> list[str]:
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=labels.lab_filter(lab))]
    found += [f"network {n.name}" for n in client.networks.list(filters=labels.lab_filter(lab))]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=labels.lab_filter(lab))]
    return found


CREATED: set[str] = set()  # labs this session made: removed at its end
STALE_AFTER = datetime.timedelta(hours=2)  # an older it- lab was left by a killed session


def sweep(client: docker.DockerClient, *, stale_only: bool) -> None:
    """Remove this session's labs, or it- labs old enough to be leftovers; never a lab
    that another test session running at the same time is using."""
    from provision.providers.docker.provider import DockerProvider
    provider = DockerProvider(client)
    now = datetime.datetime.now(datetime.timezone.utc)
    for network in client.networks.list(filters={"label": [f"{labels.KIND}=network"]}):
        lab = network.attrs["Labels"].get(labels.LAB, "")
        created = datetime.datetime.fromisoformat(network.attrs["Created"][:26].rstrip("Z") + "+00:00")
        if lab in CREATED or (stale_only and lab.startswith("it-") and now - created > STALE_AFTER):
            provider.destroy(lab)


def new_lab_name(purpose: str) -> str:
    name = f"it-{purpose}-{uuid.uuid4().hex[:4]}"
    CREATED.add(name)
    return name


@contextmanager
def a_lab(purpose: str, *flags: str) -> Iterator[str]:
    """A lab made with ``lab.up FLAGS`` for a test module, removed afterwards."""
    name = new_lab_name(purpose)
    cli("lab.up", "--lab", name, *flags)
    try:
        yield name
    finally:
        cli("lab.down", "--lab", name, check=False)


UNHEALTHY = 5  # lab.status's exit code when no manager answers or a node is not ready


def status_json(name: str) -> dict:
    """``lab.status --json``, which may be asked while a node is down: its exit code must then
    be UNHEALTHY, and 0 exactly when a manager answers and every node is ready and running."""
    result = cli("lab.status", "--lab", name, "--json", check=False)
    assert result.returncode in (0, UNHEALTHY), f"lab.status exited {result.returncode}:\n{result.stderr}"
    status = json.loads(result.stdout)
    healthy = status["swarm"] and all(n["state"] == "ready" and n["machine"] == "running" for n in status["nodes"])
    assert (result.returncode == 0) == healthy, f"lab.status exited {result.returncode} for {status}"
    return status


def addresses(name: str) -> dict[str, str]:
    """``{node: address}`` as lab.status reports them."""
    return {n["name"]: n["address"] for n in status_json(name)["nodes"]}


def leader_client(name: str):
    """A docker SDK client of the lab's current leader."""
    leader = next(n for n in status_json(name)["nodes"] if n["leader"])
    return node_client(name, leader["address"])


def swarm_nodes(name: str) -> dict[str, dict]:
    """``{hostname: node attrs}`` as the leader reports them."""
    client = leader_client(name)
    try:
        return {n.attrs["Description"]["Hostname"]: n.attrs for n in client.nodes.list()}
    finally:
        client.close()


def libvirt_leftovers(conn, lab: str) -> list[str]:
    """The lab's domains, network and pool volumes that are still there (after lab.down: none)."""
    from provision.providers.libvirt import networks
    from provision.providers.libvirt.provider import POOL

    found = [f"domain {d.name()}" for d in conn.listAllDomains(0) if d.name().startswith(f"{lab}-")]
    found += [f"network {n.name()}" for n in conn.listAllNetworks(0) if n.name() == networks.network_name(lab)]
    pool = conn.storagePoolLookupByName(POOL)
    pool.refresh(0)
    return found + [f"volume {v.name()}" for v in pool.listAllVolumes(0) if v.name().startswith(f"{lab}-")]


SECRET = re.compile(r"SWM(TKN|KEY)-1-[A-Za-z0-9+/]{20,}")
STRAY_KINDS = ("probe", "demo-image", "node-image", "registry-image")
# demo.autolock shows the unlock key on this one line, as `docker swarm update --autolock` does
UNLOCK_KEY_LINE = re.compile(r"^\s*unlock key \(shown here only, saved nowhere\): SWMKEY-1-\S+$", re.M)


def unasked(argv: list[str], text: str) -> str:
    """The part of a CLI output where no secret was asked for: none of `swarm.tokens`' (it
    prints the tokens on request), all of demo.autolock's but its unlock key line."""
    if "swarm.tokens" in argv:
        return ""
    if any(arg in ("demo.autolock", "demo.all") for arg in argv):
        return UNLOCK_KEY_LINE.sub("", text)
    return text


def secret_leaks(client: docker.DockerClient | None, home: Path) -> list[str]:
    """Where a Swarm join token or unlock key shows: any CLI output but where it was asked for
    (``unasked``), this session's node containers' logs and /var/log, its state files."""
    leaks = [" ".join(argv) for argv, text in OUTPUTS if SECRET.search(unasked(argv, text))]
    if client is not None:
        ours = [c for c in client.containers.list(filters={"label": [f"{labels.KIND}=node"]})
                if c.labels.get(labels.LAB) in CREATED]  # other sessions' labs are theirs (one may be paused)
        for container in ours:
            if SECRET.search(container.logs().decode(errors="replace")):
                leaks.append(f"docker logs {container.name}")
            _code, out = container.exec_run(["sh", "-c", "cat /var/log/*.log"])
            if SECRET.search(out.decode(errors="replace")):
                leaks.append(f"/var/log of {container.name}")
    for path, content in files_under(home):
        if SECRET.search(content.decode(errors="replace")):
            leaks.append(str(path))
    return leaks


def files_under(folder: Path) -> Iterator[tuple[Path, bytes]]:
    """Every file under ``folder`` with its content, skipping those removed while the walk
    runs: the xdist workers share one SWARMDECK_HOME, and another worker's lab.down removes
    its lab's files at any moment."""
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                yield path, path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            continue


def scan_is_blind() -> bool:
    """Whether `swarm.tokens` or demo.autolock ran and printed secrets the scan's pattern does
    not recognise."""
    printed = [text for argv, text in OUTPUTS if "swarm.tokens" in argv and "SWMTKN" in text]
    printed += [m.group(0) for _argv, text in OUTPUTS for m in UNLOCK_KEY_LINE.finditer(text)]
    return bool(printed) and not all(SECRET.search(text) for text in printed)


def stray_containers(client: docker.DockerClient) -> list[str]:
    """Probes, image builds and demo image builders that were left on the host engine."""
    return [f"{kind} {c.name}" for kind in STRAY_KINDS
            for c in client.containers.list(all=True, filters={"label": f"{labels.KIND}={kind}"})]


ARTIFACTS = Path(os.environ.get("SWARMDECK_ARTIFACTS", REPO / "artifacts"))  # screenshots and plots, kept by CI


def run_demo_report(lab: str, demo: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``demo.DEMO`` through the CLI and the report it saved; its plot is checked to be large
    enough to project and copied to artifacts/demos/."""
    from orchestrator.demos import plot
    result = cli(f"demo.{demo}", "--lab", lab, *args, check=False)
    reports = sorted((Path(os.environ["SWARMDECK_HOME"]) / "labs" / lab / "reports").glob(f"{demo}-2*.json"))
    assert reports, result.stderr
    report = json.loads(reports[-1].read_text())
    png = reports[-1].with_suffix(".png").read_bytes()
    assert len(png) > 10_000 and struct.unpack(">II", png[16:24]) == plot.SIZE  # large enough to project
    (ARTIFACTS / "demos").mkdir(parents=True, exist_ok=True)
    shutil.copy(reports[-1].with_suffix(".png"), ARTIFACTS / "demos" / f"{demo}.png")
    return result, report
