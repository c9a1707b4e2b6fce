"""A demo report's picture, made to be projected: running tasks and requests per second over
time, one colour per image version, slow requests counted as slow, and the report's events
labelled where they happened.

A demo that measures no tasks and no requests (the security chapter) gets its timeline
instead: each event written out at its time, under the side-by-side bars of what it compared
(demo.handoff's seconds, demo.encrypted-overlay's packets), and a SKIP's reason in full.

Everything here reads a report's JSON (``DemoReport.to_json()``, or a saved report file), so
an old report can be drawn again (``render_saved``). The series are plain functions
(``event_labels``, ``requests_per_second``, ``tasks_by_version``), tested without a display;
``figure`` draws them with matplotlib's Agg backend.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, fields
from pathlib import Path

from orchestrator.demos.probe import Sample
from provision import hints
from provision.errors import UsageError
from provision.paths import REPORT_NAME, lab_dir

SIZE = (1600, 900)  # pixels: a projector's 16:9, readable from the back of a room
DPI = 100
SLOW_SECONDS = 1.0  # an answer slower than this is drawn as slow (the probe asks ten times a second)
TASKS, REQUESTS = "tasks", "requests"  # the two axes: what the swarm runs, what clients got

VERSION_COLOURS = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
SLOW_COLOUR, FAILED_COLOUR = "tab:orange", "tab:red"
FONT = {"font.size": 18, "axes.titlesize": 24, "axes.labelsize": 20, "xtick.labelsize": 17, "ytick.labelsize": 17,
        "legend.fontsize": 16}
EVENT_FONT_SIZE = 15
LABEL_MAX = 26  # characters of a short label
SMALLEST_EVENT_FONT = 10  # a timeline with many events writes them smaller, never below this
SKIPPED_EVENT = "skipped: "  # DemoReport.skip's event, whose reason the timeline writes out in full instead

# (pattern in the event's text, short label made of its groups, the axis it belongs on); first match wins.
# Node and task events go on the tasks axis; image updates on the requests axis, where the versions answer.
RULES: tuple[tuple[str, str, str], ...] = (
    (r"^kill the leader (\S+)", "kill leader {0}", TASKS),
    (r"^kill (\S+) and ([^\s:]+)", "kill {0}, {1}", TASKS),
    (r"^kill (\S+)", "kill {0}", TASKS),
    (r"marks (\S+) Down", "{0} marked down", TASKS),
    (r"^cut (\S+) off", "cut {0} off", TASKS),
    (r"^heal", "healed", TASKS),
    (r"^(\S+) is back", "{0} back", TASKS),
    (r"^recovery \d+: start", "managers started", TASKS),
    (r"^recovery \d+: docker swarm init --force-new-cluster", "force-new-cluster", TASKS),
    (r"tasks run on the other nodes", "replaced", TASKS),
    (r"^meanwhile (\d+) old task", "{0} stranded", TASKS),
    (r"stranded task\(s\) on \S+ are stopped", "converged", TASKS),
    (r"^(\S+) is the new leader", "new leader {0}", TASKS),
    (r"is refused", "write refused", TASKS),
    (r"writes are accepted", "writes accepted", TASKS),
    (r"^a write .* is accepted", "write accepted", TASKS),
    (r"left their old cluster", "rejoined", TASKS),
    (r"^update to \S+:(\S+?),? ", "update to v{0}", REQUESTS),
    (r"every task runs version (\S+) again", "all v{0} again", REQUESTS),
    (r"every task runs version (\S+)", "all v{0}", REQUESTS),
    (r"^roll back", "rollback", REQUESTS),
    (r"Swarm stopped the update: (\S+)", "update {0}", REQUESTS),
    (r"^forced update", "forced update", TASKS),
    (r"^rebalanced", "rebalanced", TASKS),
    (r"^after \d+ s, \S+ runs no tasks", "not moved back", TASKS),
    (r"^service \S+: (\d+) replicas", "{0} replicas", TASKS),
    (r"^scale to (\d+)", "scale to {0}", TASKS),
    (r"^(\d+) tasks run \(and no more\)", "{0} running", TASKS),
    (r"^(\d+) tasks run; ", "{0} running", TASKS),
    (r"^(\d+) tasks run$", "{0} running", TASKS),
    (r"^drain (\S+)", "drain {0}", TASKS),
    (r"^(\S+) is active again", "{0} active", TASKS),
)


@dataclass(frozen=True)
class EventLabel:
    t: float
    text: str
    axis: str  # TASKS or REQUESTS


@dataclass
class RequestSeries:
    """Requests per second, by the second they were sent in: answered ones per version (fast
    enough), slow ones (answered after more than ``SLOW_SECONDS``) and failed ones."""

    seconds: list[int]
    by_version: dict[str, list[int]]
    slow: list[int]
    failed: list[int]
    waits: list[tuple[float, float]]  # (sent, duration) of each slow or failed request that kept the probe waiting


def short_label(text: str) -> tuple[str, str]:
    """(short label, axis) for one event's text: a rule's label, else its first words."""
    for pattern, label, axis in RULES:
        match = re.search(pattern, text)
        if match:
            return label.format(*match.groups())[:LABEL_MAX], axis
    words = text.split(":")[0].split()
    short = " ".join(words[:3])
    return (short if len(short) <= LABEL_MAX else short[:LABEL_MAX - 1] + "…"), TASKS


def event_labels(events: list[dict], *, with_requests: bool = True) -> list[EventLabel]:
    """The report's events as short labels, each on its axis (all on the tasks axis when the
    report has no requests to draw)."""
    labels = []
    for event in events:
        text, axis = short_label(event["text"])
        labels.append(EventLabel(event["t"], text, axis if with_requests else TASKS))
    return labels


def sample_from_json(data: dict) -> Sample:
    known = {f.name for f in fields(Sample)}
    return Sample(**{k: v for k, v in data.items() if k in known})


def requests_per_second(samples: list[Sample], slow_seconds: float = SLOW_SECONDS) -> RequestSeries:
    """Bucket requests by the second they were sent in; a request that took longer than its
    share of that second is still one request (slow, when it took over ``slow_seconds``)."""
    if not samples:
        return RequestSeries([], {}, [], [], [])
    length = int(max(s.t for s in samples)) + 1
    versions = sorted({s.version or "?" for s in samples if s.ok}, key=_version_key)
    by_version = {v: [0] * length for v in versions}
    slow, failed, waits = [0] * length, [0] * length, []
    for sample in samples:
        second = int(sample.t)
        took_long = sample.duration is not None and sample.duration > slow_seconds
        if not sample.ok:
            failed[second] += 1
        elif took_long:
            slow[second] += 1
        else:
            by_version[sample.version or "?"][second] += 1
        if took_long:
            waits.append((sample.t, sample.duration))
    return RequestSeries(list(range(length)), by_version, slow, failed, waits)


def tasks_by_version(data: dict) -> tuple[list[float], dict[str, list[int]], dict[str, list[int]]]:
    """(times, running tasks of each version, tasks of each version starting but not running
    yet) from the report's watcher samples; a report without versions (older ones) gives its
    running counts as version "?"."""
    entries = data.get("versions") or []
    if entries:
        times = [e["t"] for e in entries]
        running = sorted({v for e in entries for v in e["running"]}, key=_version_key)
        starting = sorted({v for e in entries for v, n in (e.get("starting") or {}).items() if n}, key=_version_key)
        return (times, {v: [e["running"].get(v, 0) for e in entries] for v in running},
                {v: [(e.get("starting") or {}).get(v, 0) for e in entries] for v in starting})
    replicas = data.get("replicas") or []
    if not replicas:
        return [], {}, {}
    return [r["t"] for r in replicas], {"?": [r["running"] for r in replicas]}, {}


def version_colours(versions: list[str]) -> dict[str, str]:
    """The same colour for a version on both axes; versions in their numeric order."""
    ordered = sorted(set(versions), key=_version_key)
    return {v: ("tab:gray" if v == "?" else VERSION_COLOURS[i % len(VERSION_COLOURS)]) for i, v in enumerate(ordered)}


def _when(data: dict) -> str:
    """"lab NAME, 2026-12-02 01:35" (the time the demo started, on the machine that ran it)."""
    started = (data.get("started_at") or "").replace("T", " ")[:16]
    return f"lab {data.get('lab', '?')}, {started}" if started else f"lab {data.get('lab', '?')}"


def _version_key(version: str) -> tuple:
    return (version == "?", int(version) if version.isdigit() else float("inf"), version)


def _version_name(version: str) -> str:
    return "running" if version == "?" else (f"v{version}" if version[:1].isdigit() else version)


def figure(data: dict, size: tuple[int, int] = SIZE):
    """The report's figure (matplotlib, Agg): the tasks axis on top, the requests axis below
    when the demo probed the service."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [sample_from_json(s) for s in data.get("samples", [])]
    requests = requests_per_second(samples)
    times, tasks, starting = tasks_by_version(data)
    if data.get("comparison") or data.get("skipped") or not (samples or times):
        return timeline_figure(data, size)
    colours = version_colours(list(tasks) + list(starting) + list(requests.by_version))
    end = max([0.0] + [s.t + (s.duration or 0) for s in samples] + [e["t"] for e in data.get("events", [])]
              + times) + 1
    with plt.rc_context(FONT):
        fig = plt.figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
        if samples:
            top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (1, 1.15)})
            axes = {TASKS: top, REQUESTS: bottom}
        else:
            top = fig.subplots(1, 1)
            axes = {TASKS: top}
            bottom = top
        _draw_tasks(top, times, tasks, starting, colours)
        if samples:
            _draw_requests(axes[REQUESTS], requests, colours)
        verdict = (data.get("verdict") or "?").upper()
        top.set_title(f"demo.{data.get('demo')}: {verdict}", loc="left", fontweight="bold")
        top.set_title(_when(data), loc="right", fontsize=FONT["legend.fontsize"], color="0.3")
        bottom.set_xlabel("seconds since the demo started")
        for axis in axes.values():
            axis.set_xlim(0, end)
            axis.grid(axis="y", alpha=0.3)
            for event in data.get("events", []):
                axis.axvline(event["t"], color="0.35", linewidth=1.2, linestyle=":", zorder=1)
        fig.tight_layout()
        for axis_name, axis in axes.items():
            chosen = [label for label in event_labels(data.get("events", []), with_requests=bool(samples))
                      if label.axis == axis_name]
            place_labels(fig, axis, chosen)
    return fig


def _draw_tasks(axis, times: list[float], tasks: dict[str, list[int]], starting: dict[str, list[int]],
                colours: dict[str, str]) -> None:
    """Running tasks stacked by version (the black line: all of them); above them, hatched, the
    tasks that were started but are not running yet (a broken version never gets further)."""
    if times:
        base = [0] * len(times)
        layers = [(counts, {"color": colours[v], "alpha": 0.85, "label": _version_name(v)}) for v, counts in tasks.items()]
        layers += [(counts, {"facecolor": "white", "edgecolor": colours[v], "hatch": "//", "linewidth": 0,
                             "label": f"{_version_name(v)} starting"}) for v, counts in starting.items()]
        for counts, style in layers:
            top = [b + c for b, c in zip(base, counts)]
            axis.fill_between(times, base, top, step="post", zorder=2, **style)
            base = top
        totals = [sum(counts) for counts in zip(*tasks.values())]
        axis.step(times, totals, where="post", color="black", linewidth=2, zorder=3)
        axis.legend(loc="upper left", bbox_to_anchor=(1.005, 1), title="tasks")
    axis.set_ylabel("running tasks")
    axis.yaxis.get_major_locator().set_params(integer=True)


def _draw_requests(axis, requests: RequestSeries, colours: dict[str, str]) -> None:
    base = [0] * len(requests.seconds)
    stacks = [(f"{_version_name(v)} ok", counts, colours[v]) for v, counts in requests.by_version.items()]
    stacks += [(f"slow (> {SLOW_SECONDS:g} s)", requests.slow, SLOW_COLOUR), ("failed", requests.failed, FAILED_COLOUR)]
    handles = []
    for name, counts, colour in stacks:
        if any(counts):
            handles.append(axis.bar(requests.seconds, counts, width=1.0, align="edge", bottom=base, color=colour,
                                    label=name, zorder=2))
            base = [b + c for b, c in zip(base, counts)]
    for sent, took in requests.waits:  # the probe sends one request at a time: it waited that long
        span = axis.axvspan(sent, sent + took, color=SLOW_COLOUR, alpha=0.15, linewidth=0, zorder=0,
                            label="waiting for a slow answer")
    if requests.waits:
        handles.append(span)
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1), title="requests")
    axis.set_ylabel("requests per second")


def place_labels(fig, axis, labels: list[EventLabel], pad_px: float = 8) -> list:
    """Write ``labels`` at their times along the top of ``axis``, each in the first row where it
    overlaps no other, and raise the axis's top so that no label covers the data; the texts."""
    if not labels:
        return []
    renderer = fig.canvas.get_renderer()
    box = axis.get_window_extent(renderer)
    to_pixels = axis.transData.transform
    texts, rows_end = [], []  # rows_end[i]: the right edge (px) of row i's last label
    for label in sorted(labels, key=lambda item: item.t):
        text = axis.text(label.t, 1.0, label.text, transform=axis.get_xaxis_transform(), fontsize=EVENT_FONT_SIZE,
                         va="top", ha="left", zorder=5, gid="event-label", clip_on=False,
                         bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "0.6", "alpha": 0.9})
        width = _outline(text, renderer).width
        x = to_pixels((label.t, 0))[0]
        left = x if x + width <= box.x1 else x - width
        if left != x:
            text.set_ha("right")
        row = next((i for i, end in enumerate(rows_end) if left >= end + pad_px), len(rows_end))
        if row == len(rows_end):
            rows_end.append(0.0)
        rows_end[row] = left + width
        texts.append((text, row))
    height = max(_outline(t, renderer).height for t, _ in texts) + pad_px / 2
    row_share = height / box.height
    for text, row in texts:
        text.set_y(1.0 - 0.012 - row * row_share)
    band = 0.02 + len(rows_end) * row_share  # the top share of the axis that the labels take
    low, high = axis.get_ylim()
    axis.set_ylim(0, max(high, 1) / max(0.2, 1 - band))
    return [text for text, _ in texts]


def timeline_figure(data: dict, size: tuple[int, int] = SIZE):
    """The figure of a demo that measured no tasks and no requests, a demo that compared cases
    or one that was skipped: from the top, the comparison's grouped bars, the SKIP's reason
    written out, and the events, one row each in the order they happened, each written at its
    time as far as the picture's width allows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skipped = data.get("skipped") or ""
    comparison = data.get("comparison") or {}
    events = [e for e in data.get("events", []) if not (skipped and e["text"].startswith(SKIPPED_EVENT))]
    alone = skipped and not comparison and not events  # the reason is the whole picture: larger
    reason_font = FONT["axes.labelsize"] if alone else EVENT_FONT_SIZE
    reason = textwrap.wrap(f"skipped: {skipped}", _characters_across(size[0], reason_font)) if skipped else []
    # the parts' heights, in rows of event text: the bars take a third of a 1600x900 picture at least
    parts = [("bars", 12.0)] if comparison else []
    parts += [("reason", len(reason) + 0.8)] if reason else []
    parts += [("events", max(3.0, len(events) + 1.8))] if events or not reason else []
    with plt.rc_context(FONT):
        fig = plt.figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
        axes = fig.subplots(len(parts), 1, squeeze=False, gridspec_kw={"height_ratios": [h for _, h in parts]})
        axes = {name: axis for (name, _), axis in zip(parts, axes[:, 0])}
        if comparison:
            _draw_comparison(axes["bars"], comparison, data.get("comparison_unit") or "s")
        if reason:
            axes["reason"].set_axis_off()
            axes["reason"].text(0.005, 0.97, "\n".join(reason), transform=axes["reason"].transAxes, va="top",
                                ha="left", fontsize=reason_font, gid="skip-reason", linespacing=1.4,
                                in_layout=False,  # wrapped to the picture's width already
                                bbox={"boxstyle": "round,pad=0.4", "facecolor": "#fff3e0", "edgecolor": SLOW_COLOUR})
        first = next(iter(axes.values()))
        verdict = (data.get("verdict") or "?").upper()
        first.set_title(f"demo.{data.get('demo')}: {verdict}", loc="left", fontweight="bold")
        first.set_title(_when(data), loc="right", fontsize=FONT["legend.fontsize"], color="0.3")
        if "events" in axes:
            _draw_events(axes["events"], events)
        fig.tight_layout()
        if "events" in axes:
            write_events(fig, axes["events"], events)
    return fig


def _characters_across(width_px: int, font_size: float) -> int:
    """How many characters of a ``font_size`` font fit across ``width_px``, margins left
    (an average character of matplotlib's DejaVu Sans takes half the font's size)."""
    return max(40, int(0.9 * width_px / (0.5 * font_size * DPI / 72)))


def _draw_comparison(axis, comparison: dict[str, dict[str, float]], unit: str) -> None:
    """One group of bars per measure, a bar per case, each bar's value written on it: seconds
    ("12.7 s") when ``unit`` is "s", else plain numbers with the unit on the axis."""
    cases = list(comparison)
    measures = list(dict.fromkeys(m for values in comparison.values() for m in values))
    width = 0.8 / max(1, len(cases))
    for number, case in enumerate(cases):
        positions = [i + number * width for i in range(len(measures))]
        values = [comparison[case].get(m, 0) for m in measures]
        drawn = axis.bar(positions, values, width=width, label=case, zorder=2,
                         color=VERSION_COLOURS[number % len(VERSION_COLOURS)])
        axis.bar_label(drawn, labels=[f"{v:.1f} s" if unit == "s" else f"{v:g}" for v in values],
                       fontsize=EVENT_FONT_SIZE, padding=3)
    axis.set_xticks([i + width * (len(cases) - 1) / 2 for i in range(len(measures))], measures)
    axis.set_ylabel("seconds" if unit == "s" else unit)
    highest = max([v for values in comparison.values() for v in values.values()] + [1])
    axis.set_ylim(0, highest * 1.35)  # room above the bars for their values and the legend
    axis.grid(axis="y", alpha=0.3)
    axis.legend(loc="upper center", ncols=len(cases))


def _draw_events(axis, events: list[dict]) -> None:
    """The events' points, one row each, the first at the top (``write_events`` writes their texts)."""
    end = max([e["t"] for e in events] + [0.0]) + 1
    rows = list(range(len(events), 0, -1))
    axis.scatter([e["t"] for e in events], rows, color="tab:blue", s=60, zorder=3)
    for event, row in zip(events, rows):
        axis.hlines(row, 0, event["t"], color="0.85", linewidth=1, zorder=1)
    axis.set_xlim(-0.01 * end, end)
    axis.set_ylim(0.3, len(events) + 0.7)
    axis.set_yticks([])
    axis.grid(axis="x", alpha=0.3)
    axis.set_xlabel("seconds since the demo started")
    if not events:
        axis.text(0.5, 0.5, "no event recorded", transform=axis.transAxes, ha="center", va="center", color="0.4")


def write_events(fig, axis, events: list[dict], pad_px: float = 10) -> list:
    """Write each event's text beside its point: on the side of the point with more room, cut
    short ("…") where even that room is too small, in a font small enough for the rows to be
    apart; the texts."""
    if not events:
        return []
    renderer = fig.canvas.get_renderer()
    box = axis.get_window_extent(renderer)
    row_px = box.height / (len(events) + 0.4)
    size = max(SMALLEST_EVENT_FONT, min(EVENT_FONT_SIZE, row_px * 0.62 * 72 / DPI))
    texts = []
    for event, row in zip(events, range(len(events), 0, -1)):
        x = axis.transData.transform((event["t"], row))[0]
        right, left = box.x1 - x - pad_px, x - box.x0 - pad_px
        on_right = right >= left
        text = axis.annotate(event["text"], (event["t"], row), xytext=(pad_px if on_right else -pad_px, 0),
                             textcoords="offset pixels", ha="left" if on_right else "right", va="center",
                             fontsize=size, gid="event-label", zorder=4, annotation_clip=False)
        _fit(text, event["text"], right if on_right else left, renderer)
        texts.append(text)
    return texts


def _fit(text, full: str, room_px: float, renderer) -> None:
    """Cut ``text`` short (ending in "…") until it takes at most ``room_px`` pixels across."""
    if text.get_window_extent(renderer).width <= room_px:
        return
    low, high = 0, len(full)  # the longest prefix that fits lies in [low, high)
    while high - low > 1:
        middle = (low + high) // 2
        text.set_text(full[:middle].rstrip() + "…")
        if text.get_window_extent(renderer).width <= room_px:
            low = middle
        else:
            high = middle
    text.set_text(full[:low].rstrip() + "…")


def _outline(text, renderer):
    """The pixels a label takes, its box included (the text's own extent leaves the box out)."""
    text.update_bbox_position_size(renderer)
    return text.get_bbox_patch().get_window_extent(renderer)


def plot(data: dict, path: Path, size: tuple[int, int] = SIZE) -> Path:
    """Draw a report (its JSON) into ``path`` as a PNG of ``size`` pixels."""
    import matplotlib.pyplot as plt

    fig = figure(data, size)
    try:
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def parse_size(text: str) -> tuple[int, int]:
    """"1920x1080" -> (1920, 1080).

    Raises:
        UsageError: for anything else, or a picture smaller than 640x360 (unreadable).
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not match or int(match.group(1)) < 640 or int(match.group(2)) < 360:
        raise UsageError(f"--size {text!r} is not WIDTHxHEIGHT in pixels of at least 640x360",
                         hint=f"for a projector: --size {SIZE[0]}x{SIZE[1]} (the default) or 1920x1080")
    return int(match.group(1)), int(match.group(2))


def redraw(lab: str, name: str | None = None, size: tuple[int, int] = SIZE) -> list[Path]:
    """Draw lab ``lab``'s saved report ``name`` (``DEMO-TIME``, or every report) again, for
    reports made before the plots changed or for another screen; the PNGs drawn.

    Raises:
        UsageError: when ``name`` is no saved report of the lab (naming those there are).
    """
    folder = lab_dir(lab) / "reports"
    found = folder.glob("*.json") if folder.is_dir() else []
    saved = sorted((p for p in found if re.fullmatch(REPORT_NAME, p.stem)), key=lambda p: p.stem[-15:])  # by time
    chosen = [p for p in saved if name in (None, p.stem, p.name)]
    if not chosen:
        there = ", ".join(p.stem for p in saved[-5:]) or "none"
        raise UsageError(f"lab {lab} has no saved demo report {name or ''}".rstrip() + f" (latest: {there})",
                         hint=f"a demo saves one: {hints.command('demo.failover', lab=lab)}")
    return [render_saved(path, size=size) for path in chosen]


def render_saved(report: Path, out: Path | None = None, size: tuple[int, int] = SIZE) -> Path:
    """Draw a saved report (``reports/DEMO-TIME.json``) again, by default beside it."""
    return plot(json.loads(report.read_text()), out or report.with_suffix(".png"), size)
