"""demo.encrypted-overlay: what the wire between two nodes carries, with and without
`docker network create --opt encrypted`.

A client task on one node asks a server task on another for a page whose address holds a
marker, over an overlay network, while a raw capture on the server's node counts the packets
between the two nodes. On a plain overlay they are VXLAN (UDP 4789) and the marker is read
in the clear; on an encrypted one they are IPsec ESP (IP protocol 50) and the marker is in no
packet. Docker sets the IPsec keys up itself and rotates them every 12 hours.

ESP is a kernel feature. Container nodes share this machine's kernel; where it lacks ESP
(``CONFIG_INET_ESP`` not set), Docker still creates the network and starts the tasks but
can install no IPsec state, and drops their traffic: the demo then says so and ends with a
SKIP verdict (lab.doctor reports it too). VM nodes run their own kernels, which have ESP.
"""

from __future__ import annotations

import secrets
import shlex
import threading

from orchestrator import services
from orchestrator.demos.report import DemoReport
from orchestrator.demos.runner import DEMO_LABEL
from orchestrator.demos.toolkit import (
    TaskContainer,
    demo_service,
    remove_network,
    task_container,
    wait_running,
)
from orchestrator.session import LabSession
from provision import kernel_features as kernel
from provision import machines
from provision.errors import LabError
from provision.paths import TEMPLATES
from provision.remote.host import Host
from provision.wait import wait_until

CAPTURE = TEMPLATES / "demos" / "capture.pl"
CAPTURE_SECONDS = 6  # on machines of pace 1; stretched by the lab's pace, up to MAX_STRETCH times
TRAFFIC_LEAD = 5  # requests go on this much longer than the capture, so it may take its time to start
MAX_STRETCH = 3  # emulated VMs on a loaded machine: a fixed 6 s window could miss every request


def windows(pace: float) -> tuple[int, int]:
    """The capture's seconds and the requests' seconds for a lab of ``pace``."""
    stretch = min(max(pace, 1.0), MAX_STRETCH)
    capture = round(CAPTURE_SECONDS * stretch)
    return capture, capture + round(TRAFFIC_LEAD * stretch)
PLAIN, ENCRYPTED = "plain", "encrypted"
# What Docker does on such a kernel: without the XFRM netlink family it refuses the tasks;
# with it but without ESP it starts them and its IPsec states fail (seen here, Docker 20.10).
REFUSES = ("Docker refuses the tasks of an encrypted network: \"cannot join secure network: required modules to "
           "install IPSEC rules are missing on host\"")
DROPS = ("Docker would still start the tasks, but install no IPsec state (its engine logs \"Failed Adding ... SA ...: "
         "function not implemented\") and drop their traffic between nodes")


def run(lab: LabSession, report: DemoReport, *, client: str | None = None, server: str | None = None) -> DemoReport:
    client, server = _pair(lab, client, server)
    chosen = [lab.provider.machine(lab.plan.name, name) for name in (client, server)]
    hosts = machines.open_hosts(lab.plan, lab.provider, chosen)
    try:
        support = {name: node_support(hosts[name]) for name in (client, server)}
        lacking = {name: found for name, found in support.items() if found.state == kernel.MISSING}
        if lacking:
            report.skip(_why_not(lab, lacking))
            return report
        for name, found in support.items():
            report.event(f"{name}: {found.reason}")
        report.notes.append("Docker makes and rotates the IPsec keys itself (every 12 hours); ESP (IP protocol 50) "
                            "must pass between the nodes, besides Swarm's ports 2377/tcp, 7946 and 4789/udp.")
        plain = _exchange(lab, report, hosts[server], client, server, PLAIN)
        sealed = _exchange(lab, report, hosts[server], client, server, ENCRYPTED)
    finally:
        machines.close_hosts(hosts)
    for kind, counts in ((PLAIN, plain), (ENCRYPTED, sealed)):
        for what in ("esp", "vxlan", "marker"):
            report.figure(f"{kind} overlay: {_NAMES[what]}", counts[what])
        report.figure(f"{kind} overlay: requests answered", counts["answered"])
    report.comparison = {f"{kind} overlay": {_NAMES[what]: counts[what] for what in ("vxlan", "esp", "marker")}
                         for kind, counts in ((PLAIN, plain), (ENCRYPTED, sealed))}
    report.comparison_unit = f"packets captured in {windows(lab.plan.pace)[0]} s"
    report.check("the client's requests were answered across both overlays",
                 plain["answered"] > 0 and sealed["answered"] > 0,
                 f"plain {plain['answered']}/{plain['asked']}, encrypted {sealed['answered']}/{sealed['asked']}")
    report.check("on the plain overlay the capture reads the request in the clear (VXLAN)",
                 plain["vxlan"] > 0 and plain["marker"] > 0,
                 f"{plain['vxlan']} VXLAN packets, the marker in {plain['marker']}")
    report.check("on the encrypted overlay the traffic between the nodes is ESP (IP protocol 50)", sealed["esp"] > 0,
                 f"{sealed['esp']} ESP packets, {sealed['vxlan']} VXLAN packets in the clear")
    report.check("no packet of the encrypted overlay shows the request", sealed["marker"] == 0,
                 f"the marker in {sealed['marker']} packets")
    return report


_NAMES = {"esp": "ESP packets", "vxlan": "VXLAN packets in the clear", "marker": "packets showing the marker"}


def node_support(host: Host) -> kernel.Support:
    """Whether ``host``'s kernel has the IPsec ESP that encrypted overlays need."""
    return kernel.ipsec_support(kernel.parse_probe(host.run(kernel.probe_command()).stdout))


def _why_not(lab: LabSession, lacking: dict[str, kernel.Support]) -> str:
    reasons = sorted({found.reason for found in lacking.values()})
    docker_does = REFUSES if any("CONFIG_XFRM_USER" in f.missing for f in lacking.values()) else DROPS
    shared = (" Container nodes share this machine's kernel (lab.doctor says so too); VM nodes "
              "(--provider libvirt) run kernels with ESP." if lab.plan.shares_kernel else "")
    return f"{', '.join(sorted(lacking))}: {'; '.join(reasons)}. {docker_does}: there is no encrypted traffic to capture.{shared}"


def _pair(lab: LabSession, client: str | None, server: str | None) -> tuple[str, str]:
    """Two different nodes: ``client`` and ``server``, else the last two nodes of the lab."""
    names = [n.name for n in lab.plan.nodes]
    if len(names) < 2:
        raise LabError("demo.encrypted-overlay needs two nodes: the traffic it captures goes between them")
    server = server or names[-1]
    client = client or next(n for n in reversed(names) if n != server)
    for name in (client, server):
        if name not in names:
            raise LabError(f"lab {lab.plan.name} has no node {name} (its nodes: {', '.join(names)})")
    if client == server:
        raise LabError(f"the client and the server must be on two nodes, not both on {client}")
    return client, server


def _exchange(lab: LabSession, report: DemoReport, server_host: Host, client: str, server: str,
              kind: str) -> dict[str, int]:
    """Requests from a task on ``client`` to one on ``server`` over a new overlay of ``kind``,
    captured on ``server``; the capture's counts and how many requests were answered."""
    network = f"demo-overlay-{kind}"
    options = {"encrypted": ""} if kind == ENCRYPTED else {}
    remove_network(lab.manager, network, timeout=lab.plan.scaled(60))
    lab.manager.networks.create(network, driver="overlay", options=options, labels={DEMO_LABEL: report.demo})
    flag = " --opt encrypted" if kind == ENCRYPTED else ""
    report.event(f"docker network create --driver overlay{flag} {network}")
    names = {role: f"demo-{kind}-{role}" for role in ("server", "client")}
    for role, node in (("server", server), ("client", client)):
        demo_service(lab, report, names[role], 1, published=False, networks=(network,),
                     constraints=(f"node.hostname=={node}",), healthcheck=False)
    for name in names.values():
        wait_running(lab, name, 1)
    address = task_container(lab, names["server"], network).addresses[network]
    asker = task_container(lab, names["client"], network)
    wait_until(lambda: _ask(asker, address, "hello") or None, timeout=lab.plan.scaled(60), interval=0.5,
               describe=f"the server task at {address} to answer the client on {client} over {network}")
    marker = f"swarmdeck-marker-{secrets.token_hex(6)}"
    capture_seconds, traffic_seconds = windows(lab.plan.pace)
    report.event(f"capture on {server} for {capture_seconds} s while the task on {client} keeps asking {address} "
                 f"for /?{marker}")
    counts = _captured(lab, server_host, server, client, marker, capture_seconds,
                       lambda: _traffic(asker, address, marker, traffic_seconds))
    report.event(f"{kind} overlay: {counts['esp']} ESP, {counts['vxlan']} VXLAN packets in the clear, the marker in "
                 f"{counts['marker']}; {counts['answered']}/{counts['asked']} requests answered")
    for name in names.values():
        services.remove(lab.manager, name)
    remove_network(lab.manager, network, timeout=lab.plan.scaled(60))
    return counts


def _ask(task: TaskContainer, address: str, path: str) -> bool:
    code, output = task.run("timeout", "2", "wget", "-q", "-O-", f"http://{address}/?{path}")
    return code == 0 and "swarmdeck-web" in output


def _traffic(task: TaskContainer, address: str, marker: str, seconds: int) -> dict[str, int]:
    """Requests from ``task`` for ``seconds``: how many were asked and answered."""
    script = (f"end=$(( $(date +%s) + {seconds} )); asked=0; answered=0; "
              "while [ $(date +%s) -lt $end ]; do asked=$((asked+1)); "
              f"timeout 2 wget -q -O- 'http://{address}/?{marker}' | grep -q swarmdeck-web && answered=$((answered+1)); "
              "sleep 0.1; done; echo asked=$asked answered=$answered")
    _code, output = task.run("sh", "-c", script)
    found = dict(part.split("=", 1) for part in output.split() if "=" in part)
    return {"asked": int(found.get("asked", 0)), "answered": int(found.get("answered", 0))}


def _captured(lab: LabSession, host: Host, server: str, client: str, marker: str, seconds: int,
              traffic) -> dict[str, int]:
    """Run the raw capture on ``host`` for ``seconds`` while ``traffic()`` runs (it starts
    first and lasts longer, so the capture sees it whenever it starts); its counts and the
    answers."""
    command = " ".join(["timeout", str(seconds + 10), "perl", "-e", shlex.quote(CAPTURE.read_text()),
                        lab.plan.node(server).address, lab.plan.node(client).address, str(seconds), marker])
    result: dict = {}
    capture = threading.Thread(target=lambda: result.update(output=host.run(command)), name="capture", daemon=True)
    capture.start()
    asked = traffic()
    capture.join(timeout=seconds + 20)
    output = result.get("output")
    if output is None or not output.ok:
        raise LabError(f"the capture on {server} failed: {output.stdout.strip() if output else 'it did not end'}")
    return {**parse_counts(output.stdout), **asked}


def parse_counts(line: str) -> dict[str, int]:
    """``esp=3 marker=0 other=5 vxlan=0`` -> {"esp": 3, ...} (every kind, 0 when missing)."""
    found = dict(part.split("=", 1) for part in line.split() if "=" in part)
    return {kind: int(found.get(kind, 0)) for kind in ("esp", "vxlan", "other", "marker")}
