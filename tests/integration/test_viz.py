"""The visualizer against a real lab: its API and event stream (a manager failing over,
quorum lost, no manager at all), then the page in headless Chromium, with a screenshot of
each state saved under artifacts/viz/ (or $SWARMDECK_ARTIFACTS/viz)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from provision.paths import REPO
from provision.wait import wait_until
from tests.labs import INVOKE, a_lab, cli

pytestmark = pytest.mark.integration
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ARTIFACTS = Path(os.environ.get("SWARMDECK_ARTIFACTS", REPO / "artifacts")) / "viz"


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
def page(viz):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        tab.goto(viz[1] + "/")
        tab.wait_for_selector("#connection[data-connection='live']")
        yield tab
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def cards(page, service: str, node: str | None = None) -> int:
    where = f"[data-node='{node}'] " if node else ""
    return page.locator(f"{where}.task[data-service='{service}']").count()


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


def test_a_killed_worker_turns_down_and_its_tasks_move(viz, page):
    name, _ = viz
    cli("lab.kill", "worker1", "--lab", name)
    try:
        wait_page(page, lambda p: p.locator("[data-node='worker1']").get_attribute("data-state") == "down",
                  "worker1 shown down")
        wait_page(page, lambda p: cards(p, "web", "worker1") == 0 and cards(p, "web") == 6
                  and p.locator(".task[data-service='web'][data-state='running']").count() == 6,
                  "the 6 web tasks running on the other nodes")
        assert "DOWN" in page.locator("[data-node='worker1'] .node-state").inner_text()
        shot(page, "03-worker1-down")
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
        assert response.headers["Content-Type"] == "image/png" and len(response.read()) > 10_000
    shot(page, "06-demo-done")
