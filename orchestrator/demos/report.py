"""Demo reports: a live timeline, figures, checks, a verdict; saved as JSON and a PNG plot
(drawn by ``orchestrator.demos.plot``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.demos import plot
from orchestrator.demos.probe import Probe, Sample
from provision.paths import lab_dir
from provision.progress import Reporter


@dataclass
class DemoReport:
    demo: str
    lab: str
    reporter: Reporter
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    events: list[tuple[float, str]] = field(default_factory=list)
    replicas: list[tuple[float, int]] = field(default_factory=list)  # (t, running tasks)
    # (t, running tasks per image version, tasks per version meant to run but not running yet)
    versions: list[tuple[float, dict[str, int], dict[str, int]]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    figures: dict[str, float | int | str] = field(default_factory=dict)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (what, passed, seen)
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)  # the profile and Swarm timings it ran with
    probe: Probe | None = None  # the probe while it runs (for the live view)
    finished: bool = False

    def now(self) -> float:
        return time.monotonic() - self.started

    def event(self, text: str) -> float:
        """Record and print a timeline entry; returns its time."""
        t = self.now()
        self.events.append((t, text))
        self.reporter.info(f"[t+{t:6.1f}s] {text}")
        return t

    def figure(self, name: str, value, unit: str = "") -> None:
        self.figures[name] = round(value, 2) if isinstance(value, float) else value
        self.reporter.info(f"  {name}: {self.figures[name]}{unit}")

    def check(self, what: str, passed: bool, seen: str) -> bool:
        self.checks.append((what, passed, seen))
        self.reporter.emit("ok" if passed else "fail", f"{'PASS' if passed else 'FAIL'} {what} ({seen})")
        return passed

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def to_json(self) -> dict:
        ok = sum(s.ok for s in self.samples)
        return {
            "demo": self.demo, "lab": self.lab, "started_at": self.started_at, "timings": self.timings,
            "verdict": "pass" if self.passed else "fail",
            "figures": self.figures,
            "checks": [{"what": w, "passed": p, "seen": s} for w, p, s in self.checks],
            "requests": {"ok": ok, "failed": len(self.samples) - ok},
            "events": [{"t": round(t, 2), "text": text} for t, text in self.events],
            "replicas": [{"t": round(t, 2), "running": n} for t, n in sorted(self.replicas)],
            "versions": [{"t": round(t, 2), "running": up, "starting": starting}
                         for t, up, starting in sorted(self.versions, key=lambda e: e[0])],
            "samples": [s.to_json() for s in self.samples],
            "notes": self.notes,
        }

    def live(self) -> dict:
        """What the visualizer shows while the demo runs (and its verdict once it ended)."""
        if self.probe is not None and not self.finished:
            ok, failed = self.probe.counts()
        else:
            ok = sum(s.ok for s in self.samples)
            failed = len(self.samples) - ok
        return {
            "demo": self.demo, "lab": self.lab, "started_at": self.started_at, "timings": self.timings,
            "events": [{"t": round(t, 2), "text": text} for t, text in self.events],
            "probe": {"ok": ok, "failed": failed} if (self.probe or self.samples) else None,
            "verdict": ("pass" if self.passed else "fail") if self.finished else None,
        }

    def write_live(self) -> None:
        """Write ``reports/live.json`` whole (replaced atomically, so a reader never sees half)."""
        folder = lab_dir(self.lab) / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / "live.json.partial"
        partial.write_text(json.dumps(self.live()))
        partial.replace(folder / "live.json")

    def save(self) -> tuple[Path, Path]:
        folder = lab_dir(self.lab) / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{self.demo}-{time.strftime('%Y%m%d-%H%M%S')}"
        json_path, png_path = stem.with_suffix(".json"), stem.with_suffix(".png")
        json_path.write_text(json.dumps(self.to_json(), indent=2))
        plot.plot(self.to_json(), png_path)
        self.reporter.info(f"report: {json_path}\n  plot:   {png_path}")
        return json_path, png_path
