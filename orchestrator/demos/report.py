"""Demo reports: a live timeline, figures, checks, a verdict; saved as JSON and a PNG plot
(drawn by ``orchestrator.demos.plot``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.demos import plot
from orchestrator.demos.probe import Probe, Sample
from provision.errors import redact
from provision.paths import lab_dir
from provision.progress import Reporter

PASS, FAIL, SKIP = "pass", "fail", "skip"


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
    skipped: str = ""  # why the demo cannot run here (its verdict is then SKIP: neither a pass nor a failure)
    comparison: dict[str, dict[str, float]] = field(default_factory=dict)  # {case: {measure: value}}, plotted as bars
    comparison_unit: str = "s"  # what the comparison's values count: seconds, or packets...

    def now(self) -> float:
        return time.monotonic() - self.started

    def event(self, text: str) -> float:
        """Record and print a timeline entry; returns its time. Swarm secrets (join tokens,
        unlock keys) are redacted, here as in everything a report keeps."""
        t = self.now()
        self.events.append((t, redact(text)))
        self.reporter.info(f"[t+{t:6.1f}s] {text}")
        return t

    def show_secret(self, text: str) -> None:
        """Print ``text`` unredacted and keep it nowhere: the one way a demo shows a secret
        (demo.autolock's unlock key, which the user needs, as `docker swarm update
        --autolock` prints it). It is not an event, so neither the saved report nor the
        visualizer's narration holds it."""
        self.reporter.emit("info", text)

    def skip(self, reason: str) -> None:
        """This demo cannot run here (a kernel feature is missing, say): its verdict is SKIP."""
        self.skipped = redact(reason)
        self.event(f"skipped: {reason}")

    def figure(self, name: str, value, unit: str = "") -> None:
        self.figures[name] = round(value, 2) if isinstance(value, float) else value
        self.reporter.info(f"  {name}: {self.figures[name]}{unit}")

    def check(self, what: str, passed: bool, seen: str) -> bool:
        what, seen = redact(what), redact(seen)
        self.checks.append((what, passed, seen))
        self.reporter.emit("ok" if passed else "fail", f"{'PASS' if passed else 'FAIL'} {what} ({seen})")
        return passed

    @property
    def passed(self) -> bool:
        return not self.skipped and bool(self.checks) and all(ok for _, ok, _ in self.checks)

    @property
    def verdict(self) -> str:
        """pass | fail | skip."""
        return SKIP if self.skipped else PASS if self.passed else FAIL

    def to_json(self) -> dict:
        ok = sum(s.ok for s in self.samples)
        return {
            "demo": self.demo, "lab": self.lab, "started_at": self.started_at, "timings": self.timings,
            "verdict": self.verdict, "skipped": self.skipped or None,
            "figures": self.figures, "comparison": self.comparison, "comparison_unit": self.comparison_unit,
            "checks": [{"what": w, "passed": p, "seen": s} for w, p, s in self.checks],
            "requests": {"ok": ok, "failed": len(self.samples) - ok},
            "events": [{"t": round(t, 2), "text": text} for t, text in self.events],
            "replicas": [{"t": round(t, 2), "running": n} for t, n in sorted(self.replicas)],
            "versions": [{"t": round(t, 2), "running": up, "starting": starting}
                         for t, up, starting in sorted(self.versions, key=lambda e: e[0])],
            "samples": [s.to_json() for s in self.samples],
            "notes": [redact(note) for note in self.notes],
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
            "verdict": self.verdict if self.finished else None,
        }

    def write_live(self) -> None:
        """Write ``reports/live.json`` whole (replaced atomically, so a reader never sees half)."""
        folder = lab_dir(self.lab) / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / "live.json.partial"
        partial.write_text(redact(json.dumps(self.live())))
        partial.replace(folder / "live.json")

    def save(self) -> tuple[Path, Path]:
        folder = lab_dir(self.lab) / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{self.demo}-{time.strftime('%Y%m%d-%H%M%S')}"
        json_path, png_path = stem.with_suffix(".json"), stem.with_suffix(".png")
        saved = redact(json.dumps(self.to_json(), indent=2))
        json_path.write_text(saved)
        plot.plot(json.loads(saved), png_path)  # the picture shows what was saved: redacted too
        self.reporter.info(f"report: {json_path}")
        self.reporter.info(f"plot:   {png_path}")
        return json_path, png_path
