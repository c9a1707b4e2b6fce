"""The demo plots without a display (matplotlib's Agg backend): events to short labels on
their axes, probe samples to requests per second by version with slow requests counted,
watcher samples to running tasks by version, and a figure large enough to project whose
labels neither overlap each other nor cover the data."""

from __future__ import annotations

import json
import struct
from io import BytesIO
from itertools import combinations

import pytest

from orchestrator.demos import plot
from orchestrator.demos.probe import Sample
from provision.errors import UsageError

FAILOVER_EVENTS = [
    {"t": 0.2, "text": "service demo-failover: 4 replicas of swarmdeck/web:1, port 8080 (host mode)"},
    {"t": 4.3, "text": "4 tasks run; 1 on worker1"},
    {"t": 6.3, "text": "kill worker1 (hard power-off)"},
    {"t": 17.6, "text": "the swarm marks worker1 Down"},
    {"t": 21.5, "text": "all 4 tasks run on the other nodes"},
    {"t": 23.0, "text": "worker1 is back and Ready"},
    {"t": 28.0, "text": "after 5 s, worker1 runs no tasks: Swarm does not move them back"},
    {"t": 28.0, "text": "forced update (docker service update --force) to rebalance"},
    {"t": 44.1, "text": "rebalanced over 3 nodes: manager1, worker1, worker2"},
]
ROLLING_EVENTS = [
    {"t": 4.0, "text": "update to swarmdeck/web:2 (parallelism 1, delay 1 s, start-first)"},
    {"t": 18.2, "text": "every task runs version 2"},
    {"t": 21.2, "text": "roll back (docker service rollback)"},
    {"t": 37.4, "text": "every task runs version 1 again"},
    {"t": 40.4, "text": "update to swarmdeck/web:3, whose healthcheck always fails"},
    {"t": 47.0, "text": "Swarm stopped the update: paused"},
]


def test_events_become_short_labels_on_the_axis_where_they_happened():
    labels = plot.event_labels(FAILOVER_EVENTS)
    assert [label.text for label in labels] == [
        "4 replicas", "4 running", "kill worker1", "worker1 marked down", "replaced", "worker1 back",
        "not moved back", "forced update", "rebalanced"]
    assert {label.axis for label in labels} == {plot.TASKS}
    rolling = plot.event_labels(ROLLING_EVENTS)
    assert [(label.text, label.axis) for label in rolling] == [
        ("update to v2", plot.REQUESTS), ("all v2", plot.REQUESTS), ("rollback", plot.REQUESTS),
        ("all v1 again", plot.REQUESTS), ("update to v3", plot.REQUESTS), ("update paused", plot.REQUESTS)]
    assert {label.axis for label in plot.event_labels(ROLLING_EVENTS, with_requests=False)} == {plot.TASKS}
    assert plot.short_label("kill the leader manager1 (hard power-off)")[0] == "kill leader manager1"
    assert plot.short_label("kill manager2 and manager3: 1 of 3 managers is left, no majority")[0] == \
        "kill manager2, manager3"
    unknown, axis = plot.short_label("something nobody wrote a rule for, with many words")
    assert unknown == "something nobody wrote" and axis == plot.TASKS and len(unknown) <= plot.LABEL_MAX


def test_requests_are_counted_by_the_second_they_were_sent_in_by_version_and_slow_as_slow():
    samples = [
        Sample(0.1, True, "1", duration=0.01), Sample(0.5, True, "2", duration=0.02),
        Sample(1.2, True, "1", duration=1.8),  # slow: the probe waited until t=3.0, sending nothing
        Sample(3.0, True, "2", duration=0.05), Sample(3.1, False, error="timeout", duration=2.0),
        Sample(5.4, True, "1"),  # an older report's sample: no duration, counted as answered
    ]
    series = plot.requests_per_second(samples)
    assert series.seconds == [0, 1, 2, 3, 4, 5]
    assert series.by_version == {"1": [1, 0, 0, 0, 0, 1], "2": [1, 0, 0, 1, 0, 0]}
    assert series.slow == [0, 1, 0, 0, 0, 0] and series.failed == [0, 0, 0, 1, 0, 0]
    assert series.waits == [(1.2, 1.8), (3.1, 2.0)]
    total = sum(map(sum, series.by_version.values())) + sum(series.slow) + sum(series.failed)
    assert total == len(samples)  # every request counted once, none lost to a gap
    assert plot.requests_per_second([]).seconds == []


def test_versions_are_ordered_by_number_and_keep_their_colour_on_both_axes():
    series = plot.requests_per_second([Sample(0.1, True, "10"), Sample(0.2, True, "2"), Sample(0.3, True, "1")])
    assert list(series.by_version) == ["1", "2", "10"]
    colours = plot.version_colours(["2", "1", "10", "?"])
    assert len(set(colours.values())) == 4 and colours["1"] == plot.VERSION_COLOURS[0]


def test_running_tasks_by_version_with_the_tasks_still_starting():
    data = {"versions": [{"t": 0.0, "running": {"1": 2}, "starting": {}},
                         {"t": 1.0, "running": {"1": 1, "2": 1}, "starting": {"2": 1}},
                         {"t": 2.0, "running": {"2": 2}, "starting": {"3": 1}}]}
    times, running, starting = plot.tasks_by_version(data)
    assert times == [0.0, 1.0, 2.0]
    assert running == {"1": [2, 1, 0], "2": [0, 1, 2]} and starting == {"2": [0, 1, 0], "3": [0, 0, 1]}
    older = {"replicas": [{"t": 0.0, "running": 4}, {"t": 1.0, "running": 3}]}  # a report made before versions
    assert plot.tasks_by_version(older) == ([0.0, 1.0], {"?": [4, 3]}, {})


def rolling_report() -> dict:
    """A rolling update as the demo records it: v1 -> v2 -> v1 -> v3 never healthy, with a
    slow answer and a failed one, and events close enough together to collide."""
    samples, versions = [], []
    for tenth in range(0, 500):
        t = tenth / 10
        version = "2" if 8 <= t < 22 else "1"
        samples.append({"t": t, "ok": True, "version": version, "node": "worker1", "container": "c", "error": None,
                        "duration": 0.01})
    samples[120] = {**samples[120], "duration": 1.5}
    samples[300] = {**samples[300], "ok": False, "version": None, "error": "timeout", "duration": 2.0}
    for half in range(0, 100):
        t = half / 2
        running = {"1": 3} if t < 6 or 24 <= t else ({"1": 1, "2": 2} if t < 8 else {"2": 3})
        versions.append({"t": t, "running": running, "starting": {"3": 1} if t >= 41 else {}})
    events = ROLLING_EVENTS + [{"t": 40.6, "text": "a second event right after the first one"},
                               {"t": 40.8, "text": "and a third"}]
    return {"demo": "rolling-update", "lab": "t1", "started_at": "2026-12-02T01:35:35+0100", "verdict": "pass",
            "events": events, "samples": samples, "versions": versions,
            "replicas": [{"t": v["t"], "running": sum(v["running"].values())} for v in versions]}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_figure_is_large_enough_to_project_and_its_labels_do_not_overlap():
    import matplotlib.pyplot as plt

    fig = plot.figure(rolling_report())
    try:
        out = BytesIO()
        fig.savefig(out, dpi=plot.DPI)
        width, height = png_size(out.getvalue())
        assert (width, height) == plot.SIZE and width >= 1600 and height >= 900
        renderer = fig.canvas.get_renderer()
        labels = [t for t in fig.findobj(lambda a: a.get_gid() == "event-label")]
        assert sorted(t.get_text() for t in labels) == sorted(
            ["update to v2", "all v2", "rollback", "all v1 again", "update to v3", "update paused",
             "a second event", "and a third"])
        boxes = [t.get_bbox_patch().get_window_extent(renderer) for t in labels]
        for first, second in combinations(boxes, 2):
            assert not first.overlaps(second), (first, second)
        top, bottom = fig.axes[:2]
        for box in boxes:
            assert 0 <= box.x0 and box.x1 <= width  # inside the picture
        data_top = bottom.transData.transform((0, 10))[1]  # 10 requests a second: the highest bar
        assert all(box.y0 >= data_top for box in boxes)  # no label covers a bar
        legend = [t.get_text() for t in bottom.get_legend().get_texts()]
        assert legend == ["v1 ok", "v2 ok", "slow (> 1 s)", "failed", "waiting for a slow answer"]
        assert [t.get_text() for t in top.get_legend().get_texts()] == ["v1", "v2", "v3 starting"]
        assert min(t.get_fontsize() for t in labels) >= 14
        assert min(t.get_fontsize() for t in bottom.get_xticklabels()) >= 16
    finally:
        plt.close(fig)


def test_a_saved_report_is_drawn_again_from_its_json(tmp_path):
    older = {"demo": "failover", "lab": "t1", "verdict": "fail", "events": FAILOVER_EVENTS,
             "replicas": [{"t": 0.0, "running": 4}, {"t": 20.0, "running": 3}],
             "samples": [{"t": 1.0, "ok": True, "version": "1", "node": "w", "container": "c", "error": None}]}
    saved = tmp_path / "failover-20261202-013621.json"
    saved.write_text(json.dumps(older))
    png = plot.render_saved(saved)
    assert png == saved.with_suffix(".png") and png_size(png.read_bytes()) == plot.SIZE
    small = plot.render_saved(saved, tmp_path / "small.png", size=(800, 450))
    assert png_size(small.read_bytes()) == (800, 450)
    without_probe = plot.plot({"demo": "scale", "events": FAILOVER_EVENTS[:2], "replicas": [{"t": 0, "running": 6}]},
                              tmp_path / "scale.png")
    assert png_size(without_probe.read_bytes()) == plot.SIZE


def test_demo_plot_draws_a_labs_saved_reports_again(swarmdeck_home):
    folder = swarmdeck_home / "labs" / "t1" / "reports"
    folder.mkdir(parents=True)
    for stem in ("scale-20261202-010000", "failover-20261201-230000"):
        (folder / f"{stem}.json").write_text(json.dumps({"demo": stem.split("-")[0], "events": [], "replicas": []}))
    (folder / "live.json").write_text("{}")  # the running demo's narration: no report
    drawn = plot.redraw("t1")
    assert [p.name for p in drawn] == ["failover-20261201-230000.png", "scale-20261202-010000.png"]  # by time
    assert plot.redraw("t1", "scale-20261202-010000", (1920, 1080)) == [folder / "scale-20261202-010000.png"]
    assert png_size((folder / "scale-20261202-010000.png").read_bytes()) == (1920, 1080)
    with pytest.raises(UsageError) as unknown:
        plot.redraw("t1", "scale-19990101-000000")
    assert "latest: failover-20261201-230000, scale-20261202-010000" in str(unknown.value)
    assert "demo.failover" in unknown.value.hint
    assert plot.parse_size("1920x1080") == (1920, 1080)
    for bad in ("big", "100x100", "1600x"):
        with pytest.raises(UsageError):
            plot.parse_size(bad)
