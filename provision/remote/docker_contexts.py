"""Docker CLI contexts for lab nodes: ``docker --context swarmdeck-LAB-NODE node ls``.

A context names one node's engine (tcp://ADDR:2376) with the lab's client certificate, so
the docker CLI reaches a node without changing the shell's DOCKER_* settings, which other
tools read. The docker CLI writes its own context store (``docker context create/update/rm``):
the docker SDK's ContextAPI does not write it as the CLI reads it (it keeps the store beside
the working folder when ~/.docker/config.json is missing, names the endpoint https://, and
copies the client key world-readable).

Each context's description says whose it is ("swarmdeck lab LAB node NODE"), so that
``lab.down`` of lab ``a`` removes its contexts and never those of a lab ``a-b``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess

from provision.errors import LabError
from provision.remote.tls import CertFiles

PREFIX = "swarmdeck"
TIMEOUT = 30


def context_name(lab: str, node: str) -> str:
    return f"{PREFIX}-{lab}-{node}"


def description(lab: str, node: str) -> str:
    return f"{PREFIX} lab {lab} node {node}"


def owner(name: str, text: str) -> tuple[str, str] | None:
    """(lab, node) of a context that swarmdeck made, from its name and description; else None."""
    words = text.split()
    if len(words) != 5 or words[0] != PREFIX or words[1] != "lab" or words[3] != "node":
        return None
    lab, node = words[2], words[4]
    return (lab, node) if name == context_name(lab, node) else None


def endpoint(url: str, certs: CertFiles) -> str:
    """The value of ``docker context create --docker``: comma-separated key=value fields,
    quoted as CSV (the docker CLI parses it with a CSV reader), so no path can break it."""
    buffer = io.StringIO()
    fields = [f"host={url}", f"ca={certs.ca}", f"cert={certs.cert}", f"key={certs.key}"]
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def _docker(*args: str) -> subprocess.CompletedProcess:
    """Run the docker CLI for its context store. DOCKER_HOST and DOCKER_CONTEXT are left out:
    they choose an engine, which these commands do not need (and a DOCKER_CONTEXT naming a
    removed context would make every docker command fail)."""
    if shutil.which("docker") is None:
        raise LabError("the docker command (the Docker CLI) is not installed: docker contexts are the CLI's",
                       hint="apt-get install docker.io (or docker-cli)")
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    try:
        return subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired as err:
        raise LabError(f"`docker {' '.join(args[:2])}` did not finish within {TIMEOUT} s") from err


def _checked(*args: str) -> str:
    result = _docker(*args)
    if result.returncode:
        raise LabError(f"`docker {' '.join(args[:3])}` failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def listed() -> list[tuple[str, str]]:
    """(name, description) of every context in the docker CLI's store."""
    found = []
    for line in _checked("context", "ls", "--format", "{{json .}}").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        found.append((str(entry.get("Name", "")), str(entry.get("Description", ""))))
    return found


def of_lab(lab: str) -> list[str]:
    """The names of the contexts swarmdeck made for ``lab``'s nodes."""
    names = []
    for name, text in listed():
        found = owner(name, text)
        if found is not None and found[0] == lab:
            names.append(name)
    return names


def ensure(lab: str, node: str, url: str, certs: CertFiles) -> tuple[str, str]:
    """Create the node's context, or point it at ``url`` with ``certs`` again.

    Returns (its name, "created" | "updated")."""
    name = context_name(lab, node)
    existing = {found: text for found, text in listed()}
    if name in existing and owner(name, existing[name]) != (lab, node):
        raise LabError(f"a docker context {name} exists that swarmdeck did not make for node {node} of lab {lab} "
                       f"(its description: {existing[name]!r}): it is left as it is",
                       hint=f"remove it (`docker context rm {name}`) if it is yours to remove")
    verb = "update" if name in existing else "create"
    _checked("context", verb, name, "--description", description(lab, node), "--docker", endpoint(url, certs))
    return name, f"{verb}d"


def remove_lab(lab: str) -> list[str]:
    """Remove every context of ``lab`` (and only those); their names. Without a docker CLI
    there is no context store, so nothing to remove."""
    if shutil.which("docker") is None:
        return []
    names = of_lab(lab)
    if names:
        _checked("context", "rm", "--force", *names)
    return names
