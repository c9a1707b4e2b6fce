"""demo.autolock: `docker swarm update --autolock=true` encrypts the managers' Raft keys with
an unlock key. A manager that restarts then comes back locked: its engine runs, but it takes
no part in the swarm until `docker swarm unlock` is given the key (a wrong key is refused).
The key is shown once, in this demo's output, and kept nowhere (not in the saved report, nor
in the visualizer's narration). At the end autolock is turned off again, so the lab is left
as it was."""

from __future__ import annotations

import base64
import secrets

import docker
import docker.errors
import requests

from orchestrator import chaos, swarm
from orchestrator.demos.report import DemoReport
from orchestrator.session import LabSession
from orchestrator.views import swarm_nodes
from provision.errors import LabError, redact
from provision.wait import NotYet, wait_until


def run(lab: LabSession, report: DemoReport, *, node: str | None = None) -> DemoReport:
    victim = _choose(lab, node)
    others = [n.name for n in lab.plan.nodes if n.is_manager and n.name != victim]
    if others:
        lab.manager = lab.clients[others[0]]  # watch through a manager that is not restarted
    report.notes.append("With autolock on, the Raft data on every manager's disk is encrypted with a key that only "
                        "the unlock key opens: a stolen disk, or a restarted manager, gives nothing away until "
                        "someone types the key. Keep it outside the swarm (a password manager).")
    key = ""
    try:
        swarm.set_autolock(lab.manager, True)
        key = swarm.unlock_key(lab.manager)
        report.event("docker swarm update --autolock=true: the managers' keys are now locked by an unlock key")
        report.show_secret(f"  unlock key (shown here only, saved nowhere): {key}")
        report.event(f"restart the manager {victim} (stop its machine, start it again)")
        restarted = report.now()
        chaos.stop(lab, victim)
        chaos.start(lab, victim)
        lab.clients.close()  # the restarted engine is a new connection
        client = lab.clients[victim]
        lab.manager = lab.clients[others[0]] if others else client
        state, said = wait_until(lambda: _locked(client), timeout=lab.plan.scaled(60), interval=0.25,
                                 describe=f"{victim}'s engine to report its swarm state")
        report.event(f"{victim} is back: its engine runs, LocalNodeState {state}: {said}")
        report.figure("manager back (locked) after", report.now() - restarted, " s")
        report.check(f"the restarted manager {victim} comes back locked", state == "locked", f"LocalNodeState {state}")
        refused = _refused(client)
        report.event(f"a swarm command on {victim} is refused: {refused}")
        report.check("a locked manager serves no swarm command", bool(refused), refused)
        wrong = _wrong_key_refused(client)
        report.event(f"docker swarm unlock with a wrong key: refused ({wrong})")
        report.check("a wrong key does not unlock it", bool(wrong), wrong)
        unlocking = report.event(f"docker swarm unlock on {victim} with the key")
        swarm.unlock(client, key)
        wait_until(lambda: _manager_again(lab, client, victim), timeout=lab.plan.scaled(60), interval=0.25,
                   describe=f"{victim} to be a reachable manager after the unlock")
        back = report.event(f"{victim} is unlocked: LocalNodeState active, a reachable manager again")
        report.figure("reachable manager after the unlock", back - unlocking, " s")
        report.check(f"the key unlocked {victim}", swarm.local_state(client) == "active", "LocalNodeState active")
    finally:
        _restore(lab, victim, key)
    lab.manager.swarm.reload()
    autolock = (lab.manager.swarm.attrs["Spec"].get("EncryptionConfig") or {}).get("AutoLockManagers")
    report.event("docker swarm update --autolock=false: managers restart unlocked again, as before the demo")
    report.check("autolock is off again (the lab is as it was)", autolock is False, f"AutoLockManagers {autolock}")
    return report


def _choose(lab: LabSession, node: str | None) -> str:
    """The manager to restart: ``node``, else the last manager (the first one's engine answers
    the demo's calls, and with the docker provider it holds the registry)."""
    managers = [n.name for n in lab.plan.nodes if n.is_manager]
    if node is None:
        return managers[-1]
    if node not in managers:
        raise LabError(f"{node} is not a manager of lab {lab.plan.name} (managers: {', '.join(managers)}): "
                       "only managers hold the Raft keys that autolock locks")
    return node


def _locked(client: docker.DockerClient) -> tuple[str, str]:
    try:
        info = client.info().get("Swarm") or {}
    except (docker.errors.DockerException, requests.RequestException) as err:
        raise NotYet(f"the engine does not answer yet: {err}") from err
    state = info.get("LocalNodeState", "")
    if state in ("", "pending", "inactive"):
        raise NotYet(f"LocalNodeState {state or 'unknown'}")
    return state, info.get("Error") or "no error"


def _refused(client: docker.DockerClient) -> str:
    try:
        client.nodes.list()
    except docker.errors.APIError as err:
        return redact(" ".join(str(err.explanation or err).split()))
    return ""


def _wrong_key_refused(client: docker.DockerClient) -> str:
    wrong = "SWMKEY-1-" + base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")  # well formed, not the key
    try:
        swarm.unlock(client, wrong)
    except LabError as err:
        return str(err).removeprefix("the swarm could not be unlocked: ")
    return ""


def _manager_again(lab: LabSession, client: docker.DockerClient, name: str) -> bool:
    info = client.info().get("Swarm") or {}
    if info.get("LocalNodeState") != "active" or not info.get("ControlAvailable"):
        raise NotYet(f"LocalNodeState {info.get('LocalNodeState')}")
    seen = next((n for n in swarm_nodes(lab.manager) if n.hostname == name and n.role == "manager"), None)
    if seen is None or seen.reachability != "reachable":
        raise NotYet(f"the swarm sees {name} {seen.reachability if seen else 'nowhere'}")
    return True


def _restore(lab: LabSession, victim: str, key: str) -> None:
    """Leave the lab as it was, whatever happened: the manager unlocked and autolock off."""
    if key:
        try:
            if swarm.local_state(lab.clients[victim]) == "locked":
                swarm.unlock(lab.clients[victim], key)
        except (LabError, docker.errors.DockerException, requests.RequestException):
            pass  # it did not come back: lab.start brings it, unlocked once autolock is off
    swarm.set_autolock(lab.refresh_manager(), False)
