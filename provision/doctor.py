"""`lab.doctor`: what this machine offers labs, each finding with a fix-it line."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import docker
import docker.errors

from provision import hints
from provision import kernel_features as ipvs
from provision.errors import LabError
from provision.images import node as images
from provision.images import vm as vm_images
from provision.providers.docker import runtime_profile as runtime

NODE_MEMORY_MB = 80  # an idle node measured 45-70 MB
VM_DISK_GB = 4  # the VM image (about 0.7 GB), its copy in the libvirt pool, node overlays


@dataclass(frozen=True)
class Finding:
    check: str
    level: str  # ok | warn | fail
    observed: str
    fix: str = ""


def run_checks(nodes: int = 5) -> list[Finding]:
    findings = []
    client = _client(findings)
    if client is not None:
        findings += [_guard(f, client) for f in (check_node_image, check_runtime, check_cgroup, check_disk)]
    findings += [*module_checks(), check_memory(nodes), check_kvm(), check_libvirt(), check_vm_tools(), check_vagrant()]
    return findings


def _client(findings: list[Finding]) -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=10)
        version = client.version()["Version"]
        findings.append(Finding("docker engine", "ok", f"version {version} answers"))
        return client
    except docker.errors.DockerException as err:
        findings.append(Finding("docker engine", "fail", f"no engine answers ({err})",
                                "start one: `dockerd &` after `apt-get install docker.io`, or set DOCKER_HOST"))
        return None


def _guard(check: Callable[[docker.DockerClient], Finding], client: docker.DockerClient) -> Finding:
    try:
        return check(client)
    except (docker.errors.DockerException, LabError, OSError) as err:
        return Finding(check.__name__.removeprefix("check_").replace("_", " "), "fail", str(err))


def check_node_image(client: docker.DockerClient) -> Finding:
    tag = images.node_image_tag()
    if images.has_image(client, tag):
        return Finding("node image", "ok", f"{tag} is built")
    return Finding("node image", "warn", f"{tag} is not built yet", f"{hints.command('image.build')} (lab.up builds it too)")


def check_runtime(client: docker.DockerClient) -> Finding:
    tag = images.node_image_tag()
    if not images.has_image(client, tag):
        return Finding("runtime profile", "warn", "unknown until the node image exists", hints.command("image.build"))
    profile = runtime.profile_for(client, tag)
    note = "" if profile.name == runtime.PRIVILEGED else " (--privileged is refused here; explicit capabilities used)"
    return Finding("runtime profile", "ok", profile.name + note)


def check_cgroup(client: docker.DockerClient) -> Finding:
    info = client.info()
    return Finding("cgroups", "ok", f"v{info.get('CgroupVersion', '1')}, driver {info.get('CgroupDriver')}")


def check_disk(client: docker.DockerClient) -> Finding:
    root = client.info().get("DockerRootDir", "/var/lib/docker")
    if not Path(root).exists():
        return Finding("disk", "ok", f"engine root {root} is on another machine; not checked")
    free_gb = shutil.disk_usage(root).free / 1e9
    if free_gb < 5:
        return Finding("disk", "fail", f"{free_gb:.1f} GB free under {root}",
                       "free space (`docker system prune`); a manager on a full disk can corrupt Raft")
    return Finding("disk", "ok", f"{free_gb:.0f} GB free under {root}")


def module_checks() -> list[Finding]:
    """The kernel modules that Swarm's networking needs."""
    return [check_module("ipvs", "ip_vs", "container nodes have no ingress routing mesh and no service VIPs"),
            check_module("vxlan", "vxlan", "overlay networks cannot carry traffic between nodes"),
            check_ipsec()]


def check_ipsec(root: Path = ipvs.ROOT) -> Finding:
    """IPsec ESP, which encrypted overlay networks (``--opt encrypted``) need; container nodes
    share this machine's kernel (``root``: another tree of proc/, boot/, sys/, lib/ in tests)."""
    support = ipvs.ipsec_support(ipvs.local_facts(root=root))
    if support.available:
        return Finding("ipsec", "ok", support.reason)
    consequence = ("so encrypted overlay networks (`--opt encrypted`) carry no traffic between container nodes "
                   "(Docker starts their tasks but installs no IPsec state) and demo.encrypted-overlay is skipped"
                   if support.state == ipvs.MISSING else "so encrypted overlay networks may not carry traffic "
                   "between container nodes")
    return Finding("ipsec", "warn", f"{support.reason}, {consequence}",
                   "use VM nodes (`--provider libvirt`), whose kernels have ESP, for encrypted overlays; or a "
                   "kernel built with CONFIG_INET_ESP and CONFIG_XFRM_USER (`modprobe esp4 xfrm_user` where they "
                   "are modules)")


def check_module(label: str, module: str, consequence: str) -> Finding:
    """``consequence``: a whole clause saying what is missing without the module."""
    if ipvs.module_present(module):
        return Finding(label, "ok", f"kernel module {module} is available")
    if module == "ip_vs":
        return Finding(label, "warn", f"kernel module {module} is missing, so {consequence}",
                       "publish ports in host mode (`--publish 8080:80:host`, `mode: host` in a stack) and reach "
                       "them through the lab's load balancer, which forwards ports 8080 and 8081 to every node; "
                       "use `--endpoint-mode dnsrr` instead of a VIP; or use VM nodes (`--provider libvirt`), "
                       "whose kernels have IPVS")
    return Finding(label, "fail", f"kernel module {module} is missing, so {consequence}",
                   f"load it: `modprobe {module}`")


def check_memory(nodes: int) -> Finding:
    available = available_memory_mb()
    needed = nodes * NODE_MEMORY_MB
    if available < needed:
        return Finding("memory", "warn", f"{available} MB available, {nodes} nodes want about {needed} MB",
                       "use fewer nodes (--workers) or free memory")
    return Finding("memory", "ok", f"{available} MB available (a {nodes}-node lab needs about {needed} MB)")


def memory_warning(nodes: int, node_mb: int) -> str | None:
    """A warning when ``nodes`` new machines of about ``node_mb`` MB each need more memory than
    this machine has available; None when they fit (or take none of this machine's memory)."""
    needed = nodes * node_mb
    if not needed:
        return None
    available = available_memory_mb()
    if available >= needed:
        return None
    return (f"{nodes} new node(s) need about {needed} MB of memory ({node_mb} MB each), but this machine has "
            f"{available} MB available: they may run slowly or be killed by the kernel's out-of-memory killer; "
            "use fewer nodes (--workers) or free memory")


def available_memory_mb() -> int:
    """MemAvailable from /proc/meminfo: what new processes can take without swapping."""
    return _meminfo().get("MemAvailable", 0) // 1024


def check_kvm() -> Finding:
    """Whether VMs get KVM or fall back to QEMU's software emulation (probed by booting the VM
    image's kernel under KVM once, then cached)."""
    if not os.path.exists("/dev/kvm"):
        return Finding("kvm", "warn", "/dev/kvm is missing: VMs run under software emulation (slow, but they run)",
                       "enable virtualization in the BIOS, or nested virtualization for a VM host")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Finding("kvm", "warn", "/dev/kvm is not usable by this user: VMs run under software emulation",
                       "add yourself to the kvm group")
    image = vm_images.vm_image()
    if not image.kernel.exists() or not shutil.which("qemu-system-x86_64"):
        return Finding("kvm", "ok", "/dev/kvm is present (whether it runs guests is probed at the first VM lab)")
    from provision.providers.libvirt.domains import domain_type  # noqa: PLC0415 - needs no libvirt-python

    if domain_type(image) == "kvm":
        return Finding("kvm", "ok", "KVM runs guests: VMs use it")
    return Finding("kvm", "warn", "/dev/kvm is present but cannot run a guest: VMs fall back to software emulation",
                   "nested virtualization may be off on this VM host; labs still work, about 5x slower to boot")


def check_libvirt() -> Finding:
    try:
        import libvirt  # noqa: PLC0415 - optional
    except ImportError:
        return Finding("libvirt", "warn", "libvirt-python is not installed (only the libvirt provider needs it)",
                       "pip install -e '.[libvirt]' (needs libvirt-dev and pkg-config)")
    try:
        conn = libvirt.open("qemu:///system")
    except libvirt.libvirtError as err:
        return Finding("libvirt", "warn", f"libvirtd does not answer: {str(err)[:120]}",
                       "apt-get install libvirt-daemon-system qemu-system-x86 dnsmasq-base, then start libvirtd "
                       "(`systemctl start libvirtd`, or `virtlogd -d; libvirtd -d` without systemd)")
    version = conn.getLibVersion()
    conn.close()
    return Finding("libvirt", "ok", f"libvirtd {version // 1_000_000}.{version // 1000 % 1000} answers")


def check_vagrant() -> Finding:
    """vagrant, its libvirt plugin and python-vagrant (only the vagrant provider needs them)."""
    fix = "apt-get install vagrant vagrant-libvirt (Debian), and pip install -e '.[vagrant]'"
    if shutil.which("vagrant") is None:
        return Finding("vagrant", "warn", "vagrant is not installed (only the vagrant provider needs it)", fix)
    try:
        listed = subprocess.run(["vagrant", "plugin", "list", "--machine-readable"], capture_output=True, text=True,
                                timeout=120, env={**os.environ, "VAGRANT_CHECKPOINT_DISABLE": "1"})
    except (OSError, subprocess.TimeoutExpired) as err:
        return Finding("vagrant", "warn", f"`vagrant plugin list` failed: {err}", fix)
    if ",plugin-name,vagrant-libvirt" not in listed.stdout:
        return Finding("vagrant", "warn", "vagrant is installed without the vagrant-libvirt plugin",
                       "apt-get install vagrant-libvirt (or `vagrant plugin install vagrant-libvirt`)")
    try:
        import vagrant  # noqa: F401, PLC0415 - optional
    except ImportError:
        return Finding("vagrant", "warn", "python-vagrant is not installed", "pip install -e '.[vagrant]'")
    return Finding("vagrant", "ok", "vagrant with vagrant-libvirt, and python-vagrant, are installed")


def check_vm_tools() -> Finding:
    missing = [t for t in (*vm_images.TOOLS, "qemu-system-x86_64") if not shutil.which(t)]
    if missing:
        return Finding("vm image tools", "warn", f"missing {', '.join(missing)} (only VM labs need them)",
                       "apt-get install debootstrap e2fsprogs qemu-utils qemu-system-x86")
    images_folder = vm_images.vm_image().folder.parent
    free = shutil.disk_usage(images_folder if images_folder.exists() else Path.home()).free >> 30
    if free < VM_DISK_GB:
        return Finding("vm image tools", "warn", f"{free} GB free for VM images; a VM lab wants {VM_DISK_GB} GB",
                       "free disk space, or set SWARMDECK_HOME to a bigger disk")
    return Finding("vm image tools", "ok", f"debootstrap, mkfs.ext4, qemu-img and QEMU present; {free} GB free")


def _meminfo() -> dict[str, int]:
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0])
    return values


def render(findings: list[Finding]) -> str:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for f in findings:
        lines.append(f"[{marks[f.level]}] {f.check}: {f.observed}")
        if f.fix and f.level != "ok":
            lines.append(f"       fix: {f.fix}")
    return "\n".join(lines)
