"""The visualizer against a real lab: its API and event stream (a manager failing over,
quorum lost, no manager at all), then the page in headless Chromium, and beside it the page
in projection mode at 1024x768 in another time zone, with a screenshot of each state (and a
demo's plot) saved under artifacts/viz/ (or $SWARMDECK_ARTIFACTS/viz)."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator.demos import plot
from provision.paths import REPO
from provision.wait import wait_until
from tests.labs import INVOKE, a_lab, cli

pytestmark = pytest.mark.integration
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ARTIFACTS = Path(os.environ.get("SWARMDECK_ARTIFACTS", REPO / "artifacts")) / "viz"
PROJECTOR = {"width": 1024, "height": 768}
ZONE = "Asia/Tokyo"  # the projection tab's time zone: not this machine's, so local times show


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def viz(engine):
    with a_lab("viz") as name:
        port = free_port()
        cli("viz.up", "--lab", name, "--port", str(port))
        try:
            yield name, f"http://127.0.0.1:{port}"
        finally:
            cli("viz.down", "--lab", name, check=False)


def state(url: str) -> dict:
    with _direct.open(url + "/api/state", timeout=5) as response:
        return json.load(response)


def wait_state(url: str, check, describe: str, timeout: float = 90) -> dict:
    def ready():
        current = state(url)
        return current if check(current) else None

    return wait_until(ready, timeout=timeout, interval=0.25, describe=describe)


def test_status_prints_the_visualizer_and_the_api_shows_the_lab(viz):
    name, url = viz
    assert url in cli("lab.status", "--lab", name).stdout
    current = state(url)
    assert current["status"] == "ok" and current["registry"].endswith(":5000")
    roles = sorted(n["role"] for n in current["nodes"])
    assert roles == ["leader", "manager", "manager", "worker", "worker"]
    again = cli("viz.up", "--lab", name, "--port", url.rsplit(":", 1)[1])
    assert "runs already" in again.stdout


def test_the_feed_moves_to_another_manager_when_its_own_dies(viz):
    name, url = viz
    used = state(url)["manager"]
    cli("lab.kill", used, "--lab", name)
    try:
        moved = wait_state(url, lambda s: s["status"] == "ok" and s["manager"] not in (None, used),
                           f"the visualizer to ask another manager than {used}")
        assert moved["manager"] != used
        wait_state(url, lambda s: next(n for n in s["nodes"] if n["hostname"] == used)["state"] == "down",
                   f"{used} shown down")
    finally:
        cli("lab.start", used, "--lab", name)
    wait_state(url, lambda s: all(n["state"] == "ready" for n in s["nodes"]), "every node ready again")


def test_lost_quorum_and_no_manager_are_said_clearly(viz):
    name, url = viz
    managers = [n["hostname"] for n in state(url)["nodes"] if n["role"] in ("leader", "manager")]
    for manager in managers[:2]:
        cli("lab.kill", manager, "--lab", name)
    try:
        lost = wait_state(url, lambda s: s["status"] == "no-quorum", "the visualizer to report the lost quorum")
        assert "majority (2 of 3)" in lost["message"] and lost["stale"] and len(lost["nodes"]) == 5
        cli("lab.pause", managers[2], "--lab", name)
        gone = wait_state(url, lambda s: s["status"] == "unreachable", "the visualizer to report no manager")
        assert "No manager" in gone["message"]
    finally:
        for manager in managers:
            cli("lab.start", manager, "--lab", name)
    wait_state(url, lambda s: s["status"] == "ok" and all(n["state"] == "ready" for n in s["nodes"]),
               "the swarm back with every node ready", timeout=120)


# -- the page in a real browser -------------------------------------------------------------


def chromium_path() -> str | None:
    """Debian's Chromium (or $SWARMDECK_CHROMIUM); None: Playwright's own build."""
    return os.environ.get("SWARMDECK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser(viz):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(viz, browser):
    tab = browser.new_page(viewport={"width": 1400, "height": 900})
    tab.goto(viz[1] + "/")
    tab.wait_for_selector("#connection[data-connection='live']")
    return tab


@pytest.fixture(scope="module")
def big_page(viz, browser):
    """The page as a projector shows it: 1024x768, projection mode, the viewer in Tokyo."""
    tab = browser.new_context(viewport=PROJECTOR, timezone_id=ZONE).new_page()
    tab.goto(viz[1] + "/?big=1")
    tab.wait_for_selector("#connection[data-connection='live']")
    return tab


def shot(page, name: str, full_page: bool = True) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def cards(page, service: str, node: str | None = None) -> int:
    """Cards of the tasks meant to run (not the greyed ones a down node last ran)."""
    where = f"[data-node='{node}'] " if node else ""
    return page.locator(f"{where}.task:not(.ghost)[data-service='{service}']").count()


def boxes_outside(page, selector: str) -> list[str]:
    """The elements matching ``selector`` that are not wholly inside the viewport (scrolled to the top)."""
    return page.evaluate("""(selector) => {
        window.scrollTo(0, 0);
        return [...document.querySelectorAll(selector)].filter((el) => {
            const box = el.getBoundingClientRect();
            return box.left < 0 || box.top < 0 || box.right > window.innerWidth || box.bottom > window.innerHeight;
        }).map((el) => el.dataset.node || el.id || el.tagName);
    }""", selector)


def local(stamp: str) -> str:
    """A report's time ("2026-12-02T01:35:35+0000") as the projection tab must show it."""
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").astimezone(ZoneInfo(ZONE))
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def style(page, selector: str, prop: str) -> str:
    return page.eval_on_selector(selector, f"(el) => getComputedStyle(el).getPropertyValue('{prop}')")


def wait_page(page, check, describe: str, timeout: float = 90) -> float:
    """Seconds until ``check(page)`` held."""
    start = time.monotonic()
    wait_until(lambda: check(page), timeout=timeout, interval=0.1, describe=describe)
    return time.monotonic() - start


def test_page_shows_five_nodes_with_their_roles(viz, page):
    wait_page(page, lambda p: p.locator("[data-node][data-state='ready']").count() == 5, "5 ready nodes")
    roles = {page.locator("[data-node]").nth(i).get_attribute("data-node"):
             page.locator("[data-node]").nth(i).get_attribute("data-role") for i in range(5)}
    assert sorted(roles.values()) == ["leader", "manager", "manager", "worker", "worker"]
    assert page.locator("#registry").inner_text().endswith(":5000")
    entry = state(viz[1])["entry_point"]  # data; the page says it in words
    assert entry["kind"] in ("routing-mesh", "load-balancer") and entry["ports"] == [8080, 8081]
    assert page.locator("#entry-point").inner_text() == \
        f"{entry['kind'].replace('-', ' ')} at {entry['address']} (ports 8080, 8081)"
    assert "ok" in page.locator("#swarm-status").inner_text()
    shot(page, "01-five-nodes")


def test_scaling_changes_the_cards_within_two_seconds(viz, page):
    name, _ = viz
    cli("service.create", "--name", "web", "swarmdeck/web:1", "--replicas", "3", "--lab", name)
    wait_page(page, lambda p: cards(p, "web") == 3, "3 web cards")
    cli("service.scale", "web=6", "--detach", "--lab", name)  # the page, not the command, must show it
    seconds = wait_page(page, lambda p: cards(p, "web") == 6, "6 web cards", timeout=2)
    assert seconds <= 2
    wait_page(page, lambda p: p.locator(".task[data-service='web'][data-state='running']").count() == 6,
              "6 running web cards")
    shot(page, "02-scaled-to-six")


def test_projection_mode_shows_every_node_at_1024x768_and_is_remembered(viz, page, big_page):
    name, url = viz
    wait_page(big_page, lambda p: p.locator("[data-node][data-state='ready']").count() == 5
              and cards(p, "web") == 6, "5 nodes and 6 web cards in projection mode")
    assert big_page.evaluate("document.documentElement.classList.contains('big')")
    assert big_page.get_attribute("#big-toggle", "aria-pressed") == "true"
    assert boxes_outside(big_page, "[data-node]") == []  # every node, with its tasks, on the screen
    assert big_page.evaluate("document.documentElement.scrollWidth") <= PROJECTOR["width"]
    big_text = float(style(big_page, "[data-node] h3", "font-size").removesuffix("px"))
    assert big_text >= 1.4 * float(style(page, "[data-node] h3", "font-size").removesuffix("px"))
    titles = big_page.locator("h1:visible, h2:visible").all_inner_texts()
    assert sum(name in title for title in titles) == 1 and not big_page.locator("#nodes-title").is_visible()
    shot(big_page, "07-projection-1024x768", full_page=False)
    again = big_page.context.new_page()  # the choice is remembered without ?big=1
    try:
        again.goto(url + "/")
        again.wait_for_selector("#connection[data-connection='live']")
        assert again.evaluate("document.documentElement.classList.contains('big')")
        again.click("#big-toggle")
        assert not again.evaluate("document.documentElement.classList.contains('big')")
        again.reload()
        again.wait_for_selector("#connection[data-connection='live']")
        assert not again.evaluate("document.documentElement.classList.contains('big')")
    finally:
        again.close()


def test_a_killed_worker_turns_down_and_its_tasks_move(viz, page, big_page):
    name, url = viz
    before = sum(t["node"] == "worker1" and t["service"] == "web" for t in state(url)["tasks"])
    assert before >= 1  # Swarm spreads 6 tasks over 5 nodes
    cli("lab.kill", "worker1", "--lab", name)
    try:
        wait_page(page, lambda p: p.locator("[data-node='worker1']").get_attribute("data-state") == "down",
                  "worker1 shown down")
        wait_page(page, lambda p: cards(p, "web", "worker1") == 0 and cards(p, "web") == 6
                  and p.locator(".task:not(.ghost)[data-service='web'][data-state='running']").count() == 6,
                  "the 6 web tasks running on the other nodes")
        assert "DOWN" in page.locator("[data-node='worker1'] .node-state").inner_text()
        shot(page, "03-worker1-down")
        # projection mode: worker1 crossed out, the tasks it last ran greyed, beside their new places
        dead = "[data-node='worker1']"
        wait_page(big_page, lambda p: p.locator(f"{dead}[data-down='true']").count() == 1
                  and cards(p, "web") == 6, "worker1 crossed out in projection mode")
        ghosts = big_page.locator(f"{dead} .task.ghost[data-service='web']")
        assert ghosts.count() == before and cards(big_page, "web", "worker1") == 0
        assert "grayscale(1)" in style(big_page, f"{dead} .task.ghost", "filter")
        assert "was running" in ghosts.first.inner_text()
        assert "line-through" in style(big_page, f"{dead} h3", "text-decoration-line")
        assert style(big_page, dead, "background-image").count("linear-gradient") == 2  # the cross
        down_since = next(n for n in state(url)["nodes"] if n["hostname"] == "worker1")["down_since"]
        seen = datetime.datetime.fromtimestamp(down_since, ZoneInfo(ZONE)).strftime("%H:%M:%S")
        assert f"DOWN since {seen}" in big_page.locator(f"{dead} .node-state").inner_text()  # Tokyo time
        assert boxes_outside(big_page, "[data-node]") == []
        shot(big_page, "08-projection-worker1-down", full_page=False)
    finally:
        cli("lab.start", "worker1", "--lab", name)
    wait_page(page, lambda p: p.locator("[data-node='worker1']").get_attribute("data-state") == "ready",
              "worker1 ready again")


def test_draining_a_node_is_shown(viz, page):
    name, _ = viz
    cli("swarm.drain", "worker2", "--lab", name)
    try:
        wait_page(page, lambda p: p.locator("[data-node='worker2']").get_attribute("data-availability") == "drain"
                  and cards(p, "web", "worker2") == 0, "worker2 drained and empty")
        assert "drain" in page.locator("[data-node='worker2'] .availability").inner_text()
        shot(page, "04-worker2-drained")
    finally:
        cli("swarm.activate", "worker2", "--lab", name)
    cli("service.rm", "web", "--lab", name)


def test_a_running_demo_is_narrated_and_its_plot_linked(viz, page):
    name, url = viz
    demo = subprocess.Popen([INVOKE, "demo.scale", "--lab", name], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_page(page, lambda p: p.locator("#demo").is_visible()
                  and p.locator("#demo-head").get_attribute("data-verdict") == "running"
                  and p.locator("#demo-timeline li").count() >= 1, "the demo narrated while it runs")
        assert page.locator("#demo-timeline li").first.is_visible()  # open while it runs
        shot(page, "05-demo-running")
        output, _ = demo.communicate(timeout=300)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, output
    assert url in output  # the demo prints where to watch it
    wait_page(page, lambda p: p.locator("#demo-head").get_attribute("data-verdict") == "pass", "the verdict shown")
    link = page.locator("#reports a", has_text="plot (PNG)").first
    with _direct.open(url + link.get_attribute("href"), timeout=5) as response:
        assert response.headers["Content-Type"] == "image/png"
        png = response.read()
    assert len(png) > 10_000 and struct.unpack(">II", png[16:24]) == plot.SIZE  # large enough to project
    (ARTIFACTS / "06-demo-plot.png").write_bytes(png)
    shot(page, "06-demo-done")


def test_a_finished_demos_narration_is_collapsed_and_expands(viz, page, big_page):
    _, url = viz
    wait_page(big_page, lambda p: p.locator("#demo-head").get_attribute("data-verdict") == "pass",
              "the verdict in projection mode")
    for tab in (page, big_page):
        assert not tab.eval_on_selector("#demo-narration", "(el) => el.open")
        assert not tab.locator("#demo-timeline li").first.is_visible()
        assert tab.locator("#demo-probe").is_visible() and "show" in tab.locator("#demo-summary").inner_text()
    titles = big_page.locator("h1:visible, h2:visible").all_inner_texts()
    assert sum(viz[0] in title for title in titles) == 1  # the lab is named once, in the page's title
    shot(big_page, "09-projection-demo-done", full_page=False)
    big_page.click("#demo-summary")
    wait_page(big_page, lambda p: p.locator("#demo-timeline li").first.is_visible(), "the narration expanded", timeout=5)
    assert "show" not in big_page.locator("#demo-summary").inner_text()
    report = state(url)["reports"][0]  # times in the viewer's zone: the report list and the demo's start
    shown = big_page.locator("#reports time").first
    assert shown.get_attribute("datetime") == report["started_at"]
    assert shown.inner_text() == local(report["started_at"])
    assert local(report["started_at"])[11:] in big_page.locator("#demo-head").inner_text()
    shot(big_page, "10-projection-narration-expanded", full_page=False)
