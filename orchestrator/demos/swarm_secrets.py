"""demo.secrets: a secret and a config given to a service. The secret is a file in its tasks'
/run/secrets (in memory, a tmpfs) and nowhere else: not in the service's inspect output, not
in the secret's own, not in another service's tasks. A config is the same kind of file at its
target path, but not secret: its inspect output shows its content. The secret is rotated as
`docker service update --secret-rm OLD --secret-add NEW` does, and the new tasks see the new
value. The secret's values are compared in memory and never printed nor saved."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import docker
import docker.errors
from docker.types import ConfigReference, SecretReference

from orchestrator import converge, services
from orchestrator.demos.report import DemoReport
from orchestrator.demos.runner import DEMO_LABEL
from orchestrator.demos.toolkit import (
    TaskContainer,
    demo_service,
    task_containers,
    wait_running,
)
from orchestrator.session import LabSession
from provision.errors import LabError

SERVICE, PEER = "demo-secrets", "demo-secrets-peer"
SECRET, ROTATED, CONFIG = "demo-secret", "demo-secret-v2", "demo-config"
TARGET = "db_password"  # the file name in /run/secrets, kept across the rotation
CONFIG_TARGET = "/etc/swarmdeck/app.conf"
CONFIG_TEXT = "# given by a swarm config: not secret, visible in `docker config inspect`\ngreeting=hello\n"


def run(lab: LabSession, report: DemoReport, *, replicas: int = 2, secret_file: str | None = None,
        rotated_file: str | None = None) -> DemoReport:
    first, second = _value(secret_file), _value(rotated_file)
    if first == second:
        raise LabError("the first and the rotated secret are the same value: a rotation needs a new one")
    label = {DEMO_LABEL: report.demo}
    _remove_leftovers(lab.manager)
    secret = lab.manager.secrets.create(name=SECRET, data=first, labels=label)
    config = lab.manager.configs.create(name=CONFIG, data=CONFIG_TEXT.encode(), labels=label)
    report.event(f"docker secret create {SECRET} (a value that is never shown) and docker config create {CONFIG}")
    mounted = SecretReference(secret.id, SECRET, filename=TARGET)
    at_target = ConfigReference(config.id, CONFIG, filename=CONFIG_TARGET)
    demo_service(lab, report, SERVICE, replicas, published=False, secrets=(mounted,), configs=(at_target,),
                 update_parallelism=replicas, update_order="start-first",  # the rotation in one batch
                 healthcheck=False)
    demo_service(lab, report, PEER, 1, published=False, healthcheck=False)
    wait_running(lab, SERVICE, replicas)
    wait_running(lab, PEER, 1)
    given = task_containers(lab, SERVICE)
    report.event(f"{len(given)} tasks of {SERVICE} run on {', '.join(sorted({t.node for t in given}))}; "
                 f"{PEER} runs without the secret")

    holding = [t for t in given if _read(t, f"/run/secrets/{TARGET}") == first]
    report.check(f"every task of {SERVICE} reads the secret in /run/secrets/{TARGET}", len(holding) == len(given) > 0,
                 f"{len(holding)} of {len(given)} tasks hold the value given (compared, never shown)")
    in_memory = [t for t in given if _mount_type(t, f"/run/secrets/{TARGET}") == "tmpfs"]
    report.check("the secret is kept in memory in the task (a tmpfs), never on the task's disk",
                 len(in_memory) == len(given), f"{len(in_memory)} of {len(given)} tasks mount it as tmpfs")
    configured = [t for t in given if _read(t, CONFIG_TARGET) == CONFIG_TEXT.encode()]
    report.check(f"every task reads the config at {CONFIG_TARGET}", len(configured) == len(given),
                 f"{len(configured)} of {len(given)} tasks")
    peer = task_containers(lab, PEER)
    peer_sees = [t for t in peer if _read(t, f"/run/secrets/{TARGET}") is not None]
    report.check(f"another service's task ({PEER}) has no such file", bool(peer) and not peer_sees,
                 f"/run/secrets/{TARGET} is missing in {len(peer) - len(peer_sees)} of {len(peer)} tasks")
    shown = _inspect_outputs(lab, given)
    leaked = [what for what, text in shown.items() if first in text.encode()]
    report.check("the secret's value is in no inspect output (service, secret, containers)", not leaked,
                 f"searched {', '.join(shown)}" + (f"; found in {', '.join(leaked)}" if leaked else ""))
    config_data = lab.manager.configs.get(config.id).attrs["Spec"].get("Data")
    secret_data = lab.manager.secrets.get(secret.id).attrs["Spec"].get("Data")
    report.check("`docker config inspect` shows the config's content, `docker secret inspect` never the secret's",
                 bool(config_data) and not secret_data,
                 f"config Data: {len(config_data or '')} base64 characters; secret Data: {'present' if secret_data else 'absent'}")

    refused = _removal_refused(lab.manager, secret.id)
    report.event(f"docker secret rm {SECRET} while {SERVICE} uses it: refused ({refused})")
    report.check("a secret in use cannot be removed", bool(refused), refused)

    rotated = lab.manager.secrets.create(name=ROTATED, data=second, labels=label)
    report.event(f"rotate: docker secret create {ROTATED}; docker service update --secret-rm {SECRET} "
                 f"--secret-add source={ROTATED},target={TARGET} {SERVICE}")
    rotated_at = report.now()
    seen = converge.task_ids(lab.manager, [services.find(lab.manager, SERVICE).id])
    services.swap_secret(lab.manager, SERVICE, SECRET, SecretReference(rotated.id, ROTATED, filename=TARGET))
    converge.wait(lab.manager, [converge.watch_for(lab.plan, SERVICE, seen=seen)], report.reporter,
                  pace=lab.plan.pace)
    replaced = task_containers(lab, SERVICE)
    report.event(f"the update replaced the tasks: {len(replaced)} new tasks run "
                 f"({report.now() - rotated_at:.1f} s after the update)")
    fresh = [t for t in replaced if t.task_id not in {g.task_id for g in given}]
    holding = [t for t in replaced if _read(t, f"/run/secrets/{TARGET}") == second]
    report.check(f"after the rotation every task reads the new value in /run/secrets/{TARGET}",
                 len(holding) == len(replaced) == len(fresh) > 0,
                 f"{len(holding)} of {len(replaced)} tasks (all new: {len(fresh) == len(replaced)})")
    report.figure("rotation rolled out in", report.now() - rotated_at, " s")
    lab.manager.secrets.get(secret.id).remove()
    report.event(f"docker secret rm {SECRET}: the old version is gone, nothing uses it any more")
    kept = json.dumps(report.to_json()).encode()
    report.check("neither secret value is in this report", first not in kept and second not in kept,
                 "events, figures, checks and notes searched before saving")
    return report


def _value(path: str | None) -> bytes:
    """The secret's value: the file's content, or a random one (never shown either way)."""
    if path is None:
        return secrets.token_urlsafe(24).encode()
    try:
        value = Path(path).read_bytes()
    except OSError as err:
        raise LabError(f"cannot read the secret's value from {path}: {err.strerror}") from err
    if not value:
        raise LabError(f"{path} is empty: a secret needs a value")
    return value


def _read(task: TaskContainer, path: str) -> bytes | None:
    """The file's bytes in the task, or None when it cannot be read there."""
    code, output = task.container.exec_run(["cat", path])
    return output if code == 0 else None


def _mount_type(task: TaskContainer, path: str) -> str:
    code, mounts = task.run("cat", "/proc/mounts")
    for line in mounts.splitlines() if code == 0 else []:
        fields = line.split()
        if len(fields) > 2 and fields[1] == path:
            return fields[2]
    return ""


def _inspect_outputs(lab: LabSession, tasks: list[TaskContainer]) -> dict[str, str]:
    """What `docker service inspect`, `docker secret inspect` and `docker inspect` of each task
    container print, by name."""
    found = {f"service {SERVICE}": json.dumps(services.find(lab.manager, SERVICE).attrs)}
    found.update({f"secret {s.name}": json.dumps(s.attrs)
                  for s in lab.manager.secrets.list(filters={"label": DEMO_LABEL})})
    for task in tasks:
        task.container.reload()
        found[f"container on {task.node}"] = json.dumps(task.container.attrs)
    return found


def _removal_refused(manager: docker.DockerClient, secret_id: str) -> str:
    try:
        manager.secrets.get(secret_id).remove()
    except docker.errors.APIError as err:
        return " ".join(str(err.explanation or err).split())
    return ""


def _remove_leftovers(manager: docker.DockerClient) -> None:
    """A secret or config that an interrupted run left would keep its name taken (only the
    demo's own, labelled ones: a user's secret of that name is refused by Swarm instead)."""
    for collection, names in ((manager.secrets, (SECRET, ROTATED)), (manager.configs, (CONFIG,))):
        for item in collection.list(filters={"label": DEMO_LABEL}):
            if item.name in names:
                item.remove()
