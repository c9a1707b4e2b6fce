"""Demo reports: a live timeline, figures, checks, a verdict; saved as JSON and a PNG plot."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

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
        json_path.write_text(redact(json.dumps(self.to_json(), indent=2)))
        plot(self, png_path)
        self.reporter.info(f"report: {json_path}\n  plot:   {png_path}")
        return json_path, png_path


def per_second(samples: list[Sample]) -> tuple[list[int], list[int], list[int]]:
    """(second, ok count, failed count) per whole second of the demo."""
    if not samples:
        return [], [], []
    last = int(max(s.t for s in samples)) + 1
    ok, failed = [0] * last, [0] * last
    for sample in samples:
        (ok if sample.ok else failed)[int(sample.t)] += 1
    return list(range(last)), ok, failed


def plot(report: DemoReport, path: Path) -> None:
    """Tasks and requests over time; a demo that measured neither (the security chapter) gets
    its timeline of events instead, under its side-by-side comparison when it made one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if report.comparison or not (report.replicas or report.samples):
        _plot_timeline(plt, report, path)
        return
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    if report.replicas:
        times, counts = zip(*sorted(report.replicas))
        top.step(times, counts, where="post", color="tab:blue")
    top.set_ylabel("running tasks")
    top.set_ylim(bottom=0)
    top.yaxis.get_major_locator().set_params(integer=True)
    top.set_title(f"swarmdeck demo.{report.demo}: {report.verdict.upper()}")
    seconds, ok, failed = per_second(report.samples)
    bottom.bar(seconds, ok, width=1.0, align="edge", color="tab:green", label="ok")
    bottom.bar(seconds, failed, width=1.0, align="edge", bottom=ok, color="tab:red", label="failed")
    bottom.set_ylabel("requests per second")
    bottom.set_xlabel("seconds since the demo started")
    bottom.legend(loc="upper right")
    for axis in (top, bottom):
        for t, _ in report.events:
            axis.axvline(t, color="grey", linewidth=0.6, linestyle=":")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot_timeline(plt, report: DemoReport, path: Path) -> None:
    """Each event as a labelled point in time, first at the top; above it, when the demo
    compared cases, one group of bars per measure with a bar per case (seconds written on it)."""
    events = report.events or [(0.0, report.skipped or "no event")]
    height = max(3.0, 0.42 * len(events) + 1.2)
    if report.comparison:
        fig, (bars, line) = plt.subplots(2, 1, figsize=(10, height + 3.5), gridspec_kw={"height_ratios": [3.5, height]})
        _plot_comparison(bars, report.comparison, report.comparison_unit)
    else:
        fig, line = plt.subplots(1, 1, figsize=(10, height))
    times = [t for t, _ in events]
    rows = list(range(len(events), 0, -1))
    line.scatter(times, rows, color="tab:blue", zorder=3)
    last = max(times) or 1.0
    for t, row, (_, text) in zip(times, rows, events):
        line.annotate(text if len(text) <= 90 else text[:87] + "...", (t, row), xytext=(6, -3),
                      textcoords="offset points", fontsize=8)
    line.set_xlim(-0.02 * last, last * 2.1 + 1)  # room for the labels on the right
    line.set_ylim(0.3, len(events) + 0.7)
    line.set_yticks([])
    line.set_xlabel("seconds since the demo started")
    title = f"swarmdeck demo.{report.demo}: {report.verdict.upper()}"
    (fig.axes[0]).set_title(title + (f" ({report.skipped[:80]})" if report.skipped else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot_comparison(axis, comparison: dict[str, dict[str, float]], unit: str) -> None:
    cases = list(comparison)
    measures = list(dict.fromkeys(m for values in comparison.values() for m in values))
    width = 0.8 / max(1, len(cases))
    for number, case in enumerate(cases):
        positions = [i + number * width for i in range(len(measures))]
        values = [comparison[case].get(m, 0.0) for m in measures]
        drawn = axis.bar(positions, values, width=width, label=case)
        axis.bar_label(drawn, labels=[f"{v:.1f} s" if unit == "s" else f"{v:g}" for v in values], fontsize=8)
    axis.set_xticks([i + width * (len(cases) - 1) / 2 for i in range(len(measures))], measures)
    axis.set_ylabel("seconds" if unit == "s" else unit)
    axis.set_ylim(top=max([v for values in comparison.values() for v in values.values()] + [1]) * 1.3)
    axis.legend(loc="upper center", ncols=len(cases))
