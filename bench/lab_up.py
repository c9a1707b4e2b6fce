"""Benchmark: `lab.up` of the default lab against the raw docker CLI doing the minimum.

Run: .venv/bin/python bench/lab_up.py [--rounds 3] [--big 20]
The node image must be built (`invoke image.build`). Both paths run alternately in one
session, so the ratio is fair on a noisy machine; results go to stdout as Markdown.

raw:       docker network create; 5 x docker run (same image and runtime profile); wait for
           each inner engine; swarm init on the first; join-token; 2 managers join one at a
           time, 2 workers in parallel. Nothing else: no SSH, TLS, registry or verification.
swarmdeck: `invoke lab.up --lab ...`: all of that plus SSH host setup, TLS engines, the
           registry, the demo images in it, and waiting until every node is Ready.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provision.images import node as images
from provision.providers.docker import runtime_profile as runtime  # noqa: E402

INVOKE = str(Path(sys.executable).with_name("invoke"))


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def cli_flags(profile: runtime.RuntimeProfile) -> list[str]:
    options = profile.host_config_options()
    flags = [f"-v={host}:{b['bind']}:{b['mode']}" for host, b in options["binds"].items()]
    if options.get("privileged"):
        return flags + ["--privileged"]
    flags += ["--cap-add=ALL", "--cap-drop=SYS_RESOURCE", "--device-cgroup-rule=a *:* rwm",
              "--security-opt=systempaths=unconfined"]
    flags += [f"--security-opt={o}" for o in options["security_opt"]]
    return flags + ([f"--cgroupns={options['cgroupns']}"] if "cgroupns" in options else [])


def raw_swarm(image: str, flags: list[str]) -> float:
    names = ["rawm1", "rawm2", "rawm3", "raww1", "raww2"]
    remove_raw(names)  # a run stopped midway left them
    try:
        return _raw_swarm(names, image, flags)
    finally:
        remove_raw(names)


def remove_raw(names: list[str]) -> None:
    for name in names:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)
    subprocess.run(["docker", "network", "rm", "rawnet"], capture_output=True)


def _raw_swarm(names: list[str], image: str, flags: list[str]) -> float:
    start = time.monotonic()
    sh("docker", "network", "create", "--subnet", "10.198.0.0/24", "rawnet")
    for i, name in enumerate(names):
        sh("docker", "run", "-d", "--name", name, "--hostname", name, "--network", "rawnet",
           "--ip", f"10.198.0.{10 + i}", *flags, image)
    for name in names:
        while subprocess.run(["docker", "exec", name, "docker", "info"], capture_output=True).returncode:
            time.sleep(0.1)
    sh("docker", "exec", "rawm1", "docker", "swarm", "init", "--advertise-addr", "10.198.0.10")
    manager = sh("docker", "exec", "rawm1", "docker", "swarm", "join-token", "-q", "manager")
    worker = sh("docker", "exec", "rawm1", "docker", "swarm", "join-token", "-q", "worker")
    for name in names[1:3]:
        sh("docker", "exec", name, "docker", "swarm", "join", "--token", manager, "10.198.0.10:2377")
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda n: sh("docker", "exec", n, "docker", "swarm", "join", "--token", worker,
                                   "10.198.0.10:2377"), names[3:]))
    return time.monotonic() - start


def swarmdeck_up(name: str, *flags: str) -> float:
    start = time.monotonic()
    subprocess.run([INVOKE, "lab.up", "--lab", name, *flags], check=True, capture_output=True, cwd=REPO)
    return time.monotonic() - start


def swarmdeck_down(name: str) -> None:
    subprocess.run([INVOKE, "lab.down", "--lab", name], check=True, capture_output=True, cwd=REPO)


def node_memory_mb(client: docker.DockerClient, lab: str) -> list[float]:
    containers = client.containers.list(filters={"label": [f"io.swarmdeck.lab={lab}", "io.swarmdeck.kind=node"]})
    with ThreadPoolExecutor(max_workers=8) as pool:
        stats = list(pool.map(lambda c: c.stats(stream=False), containers))
    return [s["memory_stats"]["usage"] / 2**20 for s in stats]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", type=int, default=20, help="nodes in the large lab (0: skip)")
    args = parser.parse_args()
    client = docker.from_env()
    image = images.node_image_tag()
    profile = runtime.profile_for(client, image)
    flags = cli_flags(profile)
    raw, ours = [], []
    for round_ in range(args.rounds):
        raw.append(raw_swarm(image, flags))
        ours.append(swarmdeck_up(f"bench-{round_}"))
        swarmdeck_down(f"bench-{round_}")
    print("| path | median (s) | runs (s) |\n| --- | --- | --- |")
    print(f"| raw docker CLI | {statistics.median(raw):.1f} | {', '.join(f'{x:.1f}' for x in raw)} |")
    print(f"| swarmdeck lab.up | {statistics.median(ours):.1f} | {', '.join(f'{x:.1f}' for x in ours)} |")
    print(f"\nratio swarmdeck / raw (medians): {statistics.median(ours) / statistics.median(raw):.2f}")
    warm = swarmdeck_up("bench-rerun")
    rerun = swarmdeck_up("bench-rerun")
    swarmdeck_down("bench-rerun")
    print(f"lab.up on a formed lab (no change): {rerun:.1f} s (first up {warm:.1f} s)")
    if args.big:
        workers = args.big - 3
        seconds = swarmdeck_up("bench-big", "--managers", "3", "--workers", str(workers))
        time.sleep(10)  # let the nodes settle before reading memory
        memory = node_memory_mb(client, "bench-big")
        swarmdeck_down("bench-big")
        print(f"{args.big}-node lab (3 managers + {workers} workers): up and all Ready in {seconds:.1f} s; "
              f"memory per node: median {statistics.median(memory):.0f} MB, "
              f"min {min(memory):.0f} MB, max {max(memory):.0f} MB")


if __name__ == "__main__":
    main()
