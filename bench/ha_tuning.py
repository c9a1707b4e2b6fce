"""Benchmark: the high-availability demos with Swarm's default timings and the tuned profile.

Run: .venv/bin/python bench/ha_tuning.py [--rounds 5]
Two labs of 3 managers + 4 workers (7 nodes, so that 6 host-mode replicas leave one node
free) run side by side, one per profile; each round runs demo.failover, demo.leader and
demo.rolling-update on both, alternating, so both profiles see the same machine load.
Figures come from the demos' JSON reports; medians and every raw value go to stdout
as Markdown. The labs are removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INVOKE = str(Path(sys.executable).with_name("invoke"))
PROFILES = ("default", "tuned")
DEMOS = {
    "failover": ("node marked down after", "all replicas running elsewhere after", "requests failed during the outage"),
    "leader": ("new leader elected after", "writes accepted again after", "requests failed"),
    "rolling-update": ("update to v2 took", "requests failed during the update", "requests failed during the rollback"),
}


def invoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([INVOKE, *args], cwd=REPO, capture_output=True, text=True, env=os.environ.copy())


def run_demo(lab: str, demo: str) -> dict:
    result = invoke(f"demo.{demo}", "--lab", lab)
    reports = sorted((Path(os.environ["SWARMDECK_HOME"]) / "labs" / lab / "reports").glob(f"{demo}-*.json"))
    if not reports:
        raise SystemExit(f"demo.{demo} on {lab} wrote no report:\n{result.stdout}\n{result.stderr}")
    report = json.loads(reports[-1].read_text())
    print(f"  {lab} demo.{demo}: {report['verdict']} {report['figures']}", file=sys.stderr)
    return report


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    lines = ["| demo | figure | " + " | ".join(f"{p} median (runs)" for p in PROFILES) + " |",
             "| --- | --- | " + " | ".join("---" for _ in PROFILES) + " |"]
    for demo, figures in DEMOS.items():
        for figure in figures:
            cells = []
            for profile in PROFILES:
                values = [r["figures"][figure] for r in results[profile][demo] if figure in r["figures"]]
                raw = ", ".join(f"{v:g}" for v in values)
                cells.append(f"**{statistics.median(values):g}** ({raw})" if values else "n/a")
            lines.append(f"| {demo} | {figure} | " + " | ".join(cells) + " |")
        verdicts = [" ".join(r["verdict"] for r in results[p][demo]) for p in PROFILES]
        lines.append(f"| {demo} | verdicts | " + " | ".join(verdicts) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("SWARMDECK_HOME", tempfile.mkdtemp(prefix="swarmdeck-bench-"))
    labs = {p: f"bench-ha-{p}" for p in PROFILES}
    results: dict[str, dict[str, list[dict]]] = {p: {d: [] for d in DEMOS} for p in PROFILES}
    try:
        for profile, lab in labs.items():
            up = invoke("lab.up", "--lab", lab, "--profile", profile, "--managers", "3", "--workers", "4")
            if up.returncode:
                raise SystemExit(f"lab.up {lab} failed:\n{up.stdout}\n{up.stderr}")
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_}/{args.rounds}", file=sys.stderr)
            for demo in DEMOS:
                order = PROFILES if round_ % 2 else tuple(reversed(PROFILES))
                for profile in order:
                    results[profile][demo].append(run_demo(labs[profile], demo))
    finally:
        for lab in labs.values():
            invoke("lab.down", "--lab", lab)
    timings = {p: results[p]["failover"][0]["timings"] for p in PROFILES if results[p]["failover"]}
    print(f"{args.rounds} rounds; timings per profile: {json.dumps(timings)}\n")
    print(table(results))


if __name__ == "__main__":
    main()
