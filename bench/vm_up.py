"""Benchmark: a libvirt VM lab (1 manager + 2 workers) brought up phase by phase, with the
VMs booted in parallel (what lab.up does) and one after another, in one session.

Run (root, libvirtd running): .venv/bin/python bench/vm_up.py [--rounds 1]
Phases: image (build or find the VM image and upload it to the pool), define (network,
disks, seed disks, domains defined and started), boot (until every VM answers SSH),
setup (host setup over SSH), engines (every TLS engine answers), swarm (init + joins
+ Ready). "serial" starts each VM only once the previous one answers SSH. The labs are
removed at the end, also on failure. Results go to stdout as Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator import bootstrap  # noqa: E402
from orchestrator.clients import ClientPool  # noqa: E402
from provision import inventory, machines  # noqa: E402
from provision.progress import Reporter  # noqa: E402
from provision.providers.libvirt.provider import LibvirtProvider  # noqa: E402
from provision.remote import node_files as firstboot  # noqa: E402
from provision.remote.host import SSHHost  # noqa: E402
from provision.setup import run_setup  # noqa: E402
from provision.spec import load as spec_load

PHASES = ("image", "define", "boot", "setup", "engines", "swarm")


class Quiet(Reporter):
    def emit(self, kind: str, text: str) -> None:
        pass


def bring_up(name: str, serial: bool) -> dict[str, float]:
    reporter, times = Quiet(), {}
    provider = LibvirtProvider()
    spec = spec_load.load_spec(None, {}, {"name": name, "provider": "libvirt", "managers": 1, "workers": 2})
    mark = time.monotonic()

    def phase(label: str) -> None:
        nonlocal mark
        now = time.monotonic()
        times[label], mark = now - mark, now

    provider.prepare(reporter)
    phase("image")
    plan = provider.resolve(spec)
    inventory.record_provider(spec)
    firstboot.known_hosts(plan)
    hosts = {}
    if serial:
        define_total = boot_total = 0.0
        for node in plan.nodes:
            start = time.monotonic()
            provider.create(dataclasses.replace(plan, nodes=(node,)), lambda n: firstboot.files(plan, n), reporter)
            started = time.monotonic()
            machine = provider.machine(name, node.name)
            hosts[node.name] = SSHHost(name, node.name, provider.ssh_target(machine))
            machines.wait_for_ssh(hosts[node.name], provider.capabilities.boot_timeout)
            define_total += started - start
            boot_total += time.monotonic() - started
        times["define"], times["boot"] = define_total, boot_total
        mark = time.monotonic()
    else:
        made = provider.create(plan, lambda n: firstboot.files(plan, n), reporter)
        phase("define")
        hosts = machines.open_hosts(plan, provider, made)
        phase("boot")
    run_setup(plan, hosts, reporter)
    phase("setup")
    with ClientPool(plan) as clients:
        machines.wait_for_engines(plan, clients, [n.name for n in plan.nodes], timeout=provider.capabilities.boot_timeout)
        phase("engines")
        bootstrap.bootstrap(plan, clients, reporter)
        phase("swarm")
    machines.close_hosts(hosts)
    times["total"] = sum(times[p] for p in PHASES)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("SWARMDECK_HOME", tempfile.mkdtemp(prefix="swarmdeck-bench-"))
    rows = []
    for round_ in range(1, args.rounds + 1):
        for serial in (False, True) if round_ % 2 else (True, False):
            name = f"bench-vm-{'serial' if serial else 'parallel'}"
            try:
                times = bring_up(name, serial)
            finally:
                inventory.destroy(name, "libvirt")
            rows.append(("serial" if serial else "parallel", times))
            print(f"  {rows[-1][0]}: " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items()), file=sys.stderr)
    print("| boot | " + " | ".join(PHASES) + " | total |")
    print("| --- | " + " | ".join("---" for _ in PHASES) + " | --- |")
    for mode, times in rows:
        print(f"| {mode} | " + " | ".join(f"{times[p]:.1f}" for p in (*PHASES, "total")) + " |")


if __name__ == "__main__":
    main()
