"""lesson.run: a lesson's steps through the real docker CLI on a lab, each shown and checked.

Each step's command runs in a shell with the exports of `lab.env NODE` (DOCKER_HOST and TLS:
the student's docker CLI talking to a node's engine), or over SSH on nodes (``ssh:``), in a
folder holding the lesson's ``files``. The runner shows the command, its output and the
step's explanation, asks the step's checks until they hold or its time is up, and stops on
the first step that does not hold, saying why. The step running is written to the lab's state
folder (``lesson.json``), which the visualizer shows. A lesson removes what it makes before
it starts and after it ends (its ``cleanup``), so it runs again on the same lab.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import docker.errors

from orchestrator import stacks
from orchestrator.access import engine_env, ssh_argv
from orchestrator.lessons import checks
from orchestrator.lessons.model import Lesson, Step
from orchestrator.session import LabSession
from provision import state
from provision.errors import LabError, redact
from provision.lab_services import entry_point as entrypoint
from provision.paths import TEMPLATES
from provision.progress import Reporter
from provision.render import environment

COMPOSE = TEMPLATES / "lessons" / "compose"
POLL_SECONDS = 1.0


class StepFailed(LabError):
    """A lesson step that did not hold."""


@dataclass
class Run:
    """One lesson on one lab: where its commands run and what they are rendered with."""

    lab: LabSession
    lesson: Lesson
    reporter: Reporter
    say: Callable[[str], None] = print
    workdir: Path | None = None
    last_command: str = ""  # the rendered command of the step run last (rendering may deploy a file)

    # -- what a step's command may name (its Jinja context) --------------------------------

    def context(self) -> dict:
        plan = self.lab.plan
        return {"lab": plan.name, "registry": plan.registry or "",
                "managers": [n.name for n in plan.nodes if n.is_manager],
                "workers": [n.name for n in plan.nodes if not n.is_manager],
                "manager1": plan.first_manager.name, "address": {n.name: n.address for n in plan.nodes},
                "entry": entrypoint.entry_point(plan).address, "compose": self.compose}

    def compose(self, name: str, stack: str | None = None) -> str:
        """The path of the tutorial's compose file ``name`` as the real CLI should deploy it on this
        lab: the file itself where the routing mesh exists, else its meshless rewrite (with the
        load balancer's routes set), each change shown."""
        path = COMPOSE / f"{name}.yml"
        if entrypoint.has_routing_mesh(self.lab.plan):
            return str(path)
        return str(stacks.prepare(self.lab, stack or name, str(path), self.reporter).path)

    def render(self, text: str) -> str:
        return environment().from_string(text).render(**self.context())

    # -- running ---------------------------------------------------------------------------

    def env(self, node: str) -> dict[str, str]:
        """The exports of `lab.env NODE` over this process's environment (its own DOCKER_* dropped)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        return base | engine_env(self.lab.plan, node)

    def cli_node(self, step: Step) -> str:
        """The node the step's docker CLI talks to: ``on`` (a node, or ``task:SERVICE``: a node
        running one of that service's tasks), else the first manager."""
        target = self.render(step.on) if step.on else self.lab.plan.first_manager.name
        if not target.startswith("task:"):
            return self.lab.plan.node(target).name
        service = target[len("task:"):]
        try:
            tasks = self.lab.manager.services.get(service).tasks(filters={"desired-state": "running"})
        except docker.errors.NotFound:
            tasks = []
        running = sorted(t["NodeID"] for t in tasks if t["Status"]["State"] == "running")
        if not running:
            raise StepFailed(f"no task of service {service} runs: the step runs on a node that has one")
        return self.lab.manager.nodes.get(running[0]).attrs["Description"]["Hostname"]

    def ssh_nodes(self, target: str) -> list[str]:
        plan = self.lab.plan
        chosen = {"managers": [n for n in plan.nodes if n.is_manager], "all": plan.nodes,
                  "workers": [n for n in plan.nodes if not n.is_manager]}.get(target)
        return [n.name for n in chosen] if chosen is not None else [plan.node(target).name]

    def execute(self, step: Step, command: str, node: str) -> tuple[int, str]:
        """Run ``command`` with the docker CLI pointed at ``node``, or over SSH on ``step.ssh``'s nodes
        (each output headed by its node's name when there are several)."""
        if not step.ssh:
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=self.workdir,
                                  env=self.env(node), timeout=900, check=False)
            return done.returncode, (done.stdout + done.stderr).strip()
        code, outputs, nodes = 0, [], self.ssh_nodes(step.ssh)
        for name in nodes:
            argv = ssh_argv(self.lab.plan.name, self.lab.plan.node(name).address, command)
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
            text = (done.stdout + done.stderr).strip()
            if text:
                outputs.append(f"[{name}] {text}" if len(nodes) > 1 else text)
            code = code or done.returncode
        return code, "\n".join(outputs)

    def step(self, number: int, step: Step) -> None:
        total = len(self.lesson.steps)
        command = self.last_command = self.render(step.run)
        self.mark(number, step, command, "running")
        try:
            node = "" if step.ssh else self.cli_node(step)
        except StepFailed as err:
            self.fail(number, step, command, str(err))
        self.say(f"\n── step {number}/{total} ({f'on {step.ssh} over SSH' if step.ssh else f'docker CLI at {node}'})")
        self.say(f"$ {command}")
        code, output = self.execute(step, command, node)
        for line in shown_output(output):
            self.say(f"  {line}")
        self.say(f"  → {self.render(step.explain)}")
        if step.corrected:
            self.say(f"  (corrected: {step.corrected})")
        if code != step.exit:
            self.fail(number, step, command, f"the command exited {code}, {step.exit} expected")
        ctx = checks.Context(self.lab.manager, entrypoint.entry_point(self.lab.plan).address,
                             {n.name: n.address for n in self.lab.plan.nodes}, output)
        for check in step.checks:
            args = {k: self.render(v) if isinstance(v, str) else v for k, v in check.args.items()}
            ok, seen = self.wait(ctx, check.kind, args, step.timeout)
            self.say(f"  {'✓' if ok else '✗'} {check.kind}: {seen}")
            if not ok:
                self.fail(number, step, command, f"{check.kind} does not hold after {step.timeout:.0f}s: {seen}")

    def wait(self, ctx: checks.Context, kind: str, args: dict, timeout: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout * self.lab.plan.pace
        while True:
            ok, seen = checks.ask(ctx, kind, args)
            if ok or time.monotonic() > deadline:
                return ok, seen
            time.sleep(POLL_SECONDS)

    def mark(self, number: int, step: Step, command: str, status: str, reason: str = "") -> None:
        state.write_lesson(self.lab.plan.name, {
            "lesson": self.lesson.name, "title": self.lesson.title, "step": number, "total": len(self.lesson.steps),
            "run": command, "explain": self.render(step.explain), "status": status, "reason": reason,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    def fail(self, number: int, step: Step, command: str, reason: str) -> None:
        self.mark(number, step, command, "failed", reason)
        raise StepFailed(f"lesson {self.lesson.name} stops at step {number} (`{command}`): {reason}",
                         hint=f"fix what the step says, then resume: swarmdeck lesson.run {self.lesson.name} "
                              f"--step {number} --lab {self.lab.plan.name}")

    # -- cleanup ---------------------------------------------------------------------------

    def clean(self) -> list[str]:
        """Remove what the lesson makes (its ``cleanup``); what was removed."""
        manager, cleanup, removed = self.lab.manager, self.lesson.cleanup, []
        for stack in cleanup.stacks:
            if stacks.stack_services(self.lab, stack) or stacks.leftovers(self.lab, stack):
                for service in stacks.stack_services(self.lab, stack):
                    service.remove()
                for network in manager.api.networks(filters={"label": f"{stacks.STACK_LABEL}={stack}"}):
                    _quietly(lambda: manager.api.remove_network(network["Id"]))
                stacks.wait_until_gone(self.lab, stack, timeout=120)
                removed.append(f"stack {stack}")
            stacks.set_routes(self.lab, stack, [], self.reporter)
        for name in cleanup.services:
            try:
                manager.services.get(name).remove()
                removed.append(f"service {name}")
            except docker.errors.NotFound:
                pass
        for node, names in cleanup.containers.items():
            engine = self.lab.clients[node]
            for name in names:
                try:
                    engine.containers.get(name).remove(force=True)
                    removed.append(f"container {name} on {node}")
                except docker.errors.NotFound:
                    pass
        self.wait_tasks_gone(cleanup.services)
        for name in cleanup.networks:
            for network in manager.api.networks(names=[name]):
                if network["Name"] == name:
                    _quietly(lambda: manager.api.remove_network(network["Id"]))
                    removed.append(f"network {name}")
        for node_name, keys in cleanup.node_labels.items():
            node = manager.nodes.get(node_name)
            labels = dict(node.attrs["Spec"].get("Labels") or {})
            if any(k in labels for k in keys):
                spec = dict(node.attrs["Spec"], Labels={k: v for k, v in labels.items() if k not in keys})
                node.update(spec)
                removed.append(f"labels {', '.join(keys)} of {node_name}")
        if cleanup.nodes_active:
            for node in manager.nodes.list():
                if node.attrs["Spec"].get("Availability") != "active":
                    node.update(dict(node.attrs["Spec"], Availability="active"))
                    removed.append(f"{node.attrs['Description']['Hostname']} back to active")
        return removed

    def wait_tasks_gone(self, services: tuple[str, ...], timeout: float = 120) -> None:
        """Removed services' containers stop in their own time; a lesson run again would find them."""
        deadline = time.monotonic() + timeout * self.lab.plan.pace
        for node in self.lab.plan.nodes:
            engine = self.lab.clients[node.name]
            for service in services:
                while engine.containers.list(filters={"label": f"com.docker.swarm.service.name={service}"}):
                    if time.monotonic() > deadline:
                        raise LabError(f"the tasks of service {service} on {node.name} did not stop in {timeout}s")
                    time.sleep(0.5)


PROGRESS = re.compile(r"^(overall progress: |verify: Waiting |\d+/\d+:(\s|$)|[0-9a-f]{12}: (Preparing|Waiting|Pushed|"
                      r"Layer already exists|Pulling fs layer|Verifying Checksum|Download complete|Pull complete))")


def shown_output(output: str) -> list[str]:
    """The command's output as shown: join tokens and unlock keys redacted (`swarmdeck swarm.tokens`
    shows the tokens on request; nothing a lesson prints is a secret), without the docker CLI's
    progress lines (`service create` repeats them each second when its output is not a terminal;
    the converged line stays)."""
    return [line for line in redact(output).splitlines() if not PROGRESS.match(line.strip())]


def _quietly(action: Callable[[], object]) -> None:
    """Do ``action``; what is already gone (Swarm removes a stack's network in its own time) is fine."""
    try:
        action()
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as err:
        if "not found" not in str(err.explanation or err):
            raise


def run(lab: LabSession, lesson: Lesson, reporter: Reporter, first: int = 1, last: int | None = None,
        say: Callable[[str], None] = print) -> str:
    """Run steps ``first``..``last`` of ``lesson``; raises StepFailed on the first that does not hold."""
    total = len(lesson.steps)
    last = total if last is None else last
    if not 1 <= first <= last <= total:
        raise LabError(f"lesson {lesson.name} has steps 1 to {total}: --step {first} --until {last} is outside them")
    if lab.plan.registry is None:
        raise LabError("the lessons use the tutorials' images, served by the lab registry, and this lab runs none")
    workdir = Path(tempfile.mkdtemp(prefix=f"swarmdeck-lesson-{lesson.name}-"))
    runner = Run(lab, lesson, reporter, say, workdir)
    try:
        for relative, content in lesson.files.items():
            target = workdir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        say(f"lesson {lesson.name}: {lesson.title}\n  from: {lesson.source}\n  {lesson.summary}")
        for note in lesson.notes:
            say(f"  note: {runner.render(note)}")
        if first == 1:
            removed = runner.clean()
            if removed:
                say(f"  removed what an earlier run left: {', '.join(removed)}")
        for number in range(first, last + 1):
            runner.step(number, lesson.steps[number - 1])
        if last == total:
            removed = runner.clean()
            say(f"\n  cleaned up: {', '.join(removed) or 'nothing to remove'}")
        runner.mark(last, lesson.steps[last - 1], runner.last_command, "done")
        return f"lesson {lesson.name}: steps {first} to {last} of {total} hold"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
