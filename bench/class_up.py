"""Benchmark: a class of N labs by class.up against a sequential loop of lab.up, in one run.

Run: .venv/bin/python bench/class_up.py [--labs 20] [--managers 3] [--workers 2]
With its own SWARMDECK_HOME (a temporary folder unless one is set) and lab names bench-*:
1. a sequential loop of ``lab.up`` of N labs (bench-seq-01...), timed until the last is Ready, then removed;
2. ``class.up --students N --class bench-cls`` timed until every lab is Ready (its door and snapshot made);
3. the class's memory: the node, load balancer and door containers' memory (docker stats) per lab;
4. idle CPU of the whole class: the containers' CPU, sampled over 20 s after 30 s of rest;
5. ``class.reset`` of a lab running a 10-replica service (in place), of a lab with its other managers
   killed (from the snapshot), against ``lab.down`` + ``lab.up`` of a lab of the same shape;
then ``class.down``. Results go to stdout as Markdown; progress to stderr.

It loads a 2-core machine for minutes at N=20: run it small first (--labs 4).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parent.parent
INVOKE = str(Path(sys.executable).with_name("invoke"))
LAB_LABEL = "io.swarmdeck.lab"


def invoke(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([INVOKE, *args], cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr[-3000:]}")
    return result


def timed(*args: str) -> float:
    start = time.monotonic()
    invoke(*args)
    return time.monotonic() - start


def class_containers(client: docker.DockerClient, prefix: str) -> list:
    return [c for c in client.containers.list() if c.labels.get(LAB_LABEL, "").startswith(prefix)]


def memory_mb(container) -> float:
    stats = container.stats(stream=False)
    memory = stats.get("memory_stats") or {}
    return (memory.get("usage", 0) - (memory.get("stats") or {}).get("cache", 0)) / 2 ** 20


def cpu_seconds(container) -> float:
    stats = container.stats(stream=False)
    return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labs", type=int, default=20)
    parser.add_argument("--managers", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    os.environ.setdefault("SWARMDECK_HOME", tempfile.mkdtemp(prefix="swarmdeck-bench-class-"))
    spec = Path(os.environ["SWARMDECK_HOME"]) / "class-lab.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(f"managers: {options.managers}\nworkers: {options.workers}\n")
    shape = f"{options.managers}+{options.workers}"
    client = docker.from_env(timeout=120)
    rows = []
    sequential = [f"bench-seq-{i:02d}" for i in range(1, options.labs + 1)]
    try:
        print(f"sequential loop of lab.up of {options.labs} labs of {shape} ...", file=sys.stderr)
        start = time.monotonic()
        for lab in sequential:
            invoke("lab.up", "--lab", lab, "--spec", str(spec))
        loop = time.monotonic() - start
        for lab in sequential:
            invoke("lab.down", "--lab", lab, check=False)
        print(f"class.up of {options.labs} labs ...", file=sys.stderr)
        fan = timed("class.up", "--students", str(options.labs), "--class", "bench-cls", "--spec", str(spec))
        rows += [("sequential loop of lab.up, all Ready (s)", f"{loop:.0f}"),
                 ("class.up, all Ready, doors and snapshots made (s)", f"{fan:.0f}"),
                 ("class.up / loop", f"{fan / loop:.2f} (target: at most 0.5)")]
        time.sleep(30)
        containers = class_containers(client, "bench-cls-")
        total = sum(memory_mb(c) for c in containers)
        rows.append((f"memory per lab ({len(containers) // options.labs} containers: nodes, load balancer, door) (MB)",
                     f"{total / options.labs:.0f} (whole class {total / 1024:.1f} GiB)"))
        # one stats call takes a second or two, so each container's rate is over its own interval
        # (about 20 s plus one pass over all of them), not over the 20 s alone
        before = {c.id: (cpu_seconds(c), time.monotonic()) for c in containers}
        time.sleep(20)
        rate = 0.0
        for c in containers:
            used, at = cpu_seconds(c), time.monotonic()
            rate += (used - before[c.id][0]) / (at - before[c.id][1])
        rows.append(("idle CPU of the whole class (% of one core, each container over 20 s or more)", f"{100 * rate:.0f}"))
        invoke("service.create", "--name", "student", "swarmdeck/web:1", "--replicas", "10", "--lab", "bench-cls-s01")
        in_place = timed("class.reset", "s01", "--class", "bench-cls")
        rows.append((f"class.reset of one {shape} lab running a 10-replica service: in place (s, CLI included)",
                     f"{in_place:.1f} (target: 5)"))
        if options.managers > 1:
            for manager in range(2, options.managers + 1):
                invoke("lab.kill", f"manager{manager}", "--lab", "bench-cls-s02")
            restored = timed("class.reset", "s02", "--class", "bench-cls")
            rows.append((f"class.reset of one {shape} lab with managers 2-{options.managers} killed: from the "
                         "snapshot (s, CLI included)", f"{restored:.1f}"))
        start = time.monotonic()
        invoke("lab.down", "--lab", "bench-cls-s03")
        invoke("lab.up", "--lab", "bench-cls-s03", "--spec", str(spec))
        again = time.monotonic() - start
        rows.append((f"lab.down + lab.up of one {shape} lab (s)", f"{again:.1f}"))
    finally:
        invoke("class.down", "--class", "bench-cls", check=False)
        for lab in sequential:
            invoke("lab.down", "--lab", lab, check=False)
    print(f"## class.up: {options.labs} labs of {shape}\n\n| figure | value |\n| --- | --- |")
    for figure, value in rows:
        print(f"| {figure} | {value} |")


if __name__ == "__main__":
    main()
