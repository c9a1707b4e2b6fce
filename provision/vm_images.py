"""The VM base image: one Debian root filesystem with a kernel, systemd, sshd and the Docker
engine, built offline with debootstrap from the machine's own Debian mirror.

``ensure_vm_image`` makes, once per recipe, a folder with ``base.qcow2`` (an ext4 root
filesystem without a partition table, booted directly by libvirt with the folder's
``vmlinuz`` and ``initrd.img``). Each node boots a qcow2 overlay on it, and gets its own
hostname, keys and engine files from a small seed disk (see ``seed_disk``), so no
cloud-init runs. Raw ext4 and direct kernel boot keep the build to debootstrap plus a few
seconds, and the boot short under software emulation.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from provision import hints
from provision import images, mirror as mirrors
from provision.remote import keys
from provision.errors import ImageError
from provision.remote.node_files import File
from provision.paths import TEMPLATES, home
from provision.progress import Reporter
from provision.setup.engine import SYSTEMD_DROPINS

SUITE = images.SUITE
PACKAGES = (
    "linux-image-cloud-amd64", "systemd", "systemd-sysv", "systemd-resolved", "udev", "dbus", "kmod",
    "openssh-server", "sudo",
    "docker.io", "containerd", "runc", "iptables", "iproute2", "docker-registry", "haproxy", "ca-certificates",
    "apparmor", "e2fsprogs", "procps", "iputils-ping", "ipvsadm", "curl",
)
VM_FILES = TEMPLATES / "vm"
ENGINE_DROPINS = SYSTEMD_DROPINS
ROOT_SIZE = "4G"  # the base filesystem; overlays are bigger and systemd grows it at boot
SEED_LABEL = "SWDSEED"
TOOLS = ("debootstrap", "mkfs.ext4", "qemu-img")


@dataclass(frozen=True)
class VMImage:
    folder: Path

    @property
    def disk(self) -> Path:
        return self.folder / "base.qcow2"

    @property
    def kernel(self) -> Path:
        return self.folder / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.folder / "initrd.img"

    @property
    def name(self) -> str:
        return self.folder.name

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.disk, self.kernel, self.initrd))


def recipe_hash() -> str:
    digest = hashlib.sha256(f"{SUITE}\n{' '.join(PACKAGES)}\n{ROOT_SIZE}\n".encode())
    for path in sorted([*(p for p in VM_FILES.rglob("*") if p.is_file()), *ENGINE_DROPINS.values()]):
        digest.update(str(path.relative_to(TEMPLATES)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def vm_image() -> VMImage:
    return VMImage(home() / "images" / f"vm-{recipe_hash()}")


def ensure_vm_image(reporter: Reporter, *, mirror: str | None = None, rebuild: bool = False) -> VMImage:
    """The VM base image of the current recipe, built first when missing (about 1.5 min, once)."""
    image = vm_image()
    if image.complete() and not rebuild:
        reporter.result(f"VM image {image.name}", changed=False)
        return image
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        raise ImageError(
            "building the VM image needs root and " + ", ".join(TOOLS) + (f" (missing: {', '.join(missing)})"
                                                                          if missing else ""),
            hint=f"as root: `apt-get install debootstrap e2fsprogs qemu-utils`, then {hints.command('image.build', '--format', 'qcow2')}",
        )
    with reporter.step(f"building VM image {image.name} with debootstrap (about 1.5 minutes, once)"):
        _build(image, mirror or mirrors.debian_mirror(SUITE), reporter)
    return image


def _build(image: VMImage, mirror: str, reporter: Reporter) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="swarmdeck-vm-", dir="/var/tmp"))
    root, partial = workdir / "root", image.folder.with_name(image.folder.name + ".partial")
    try:
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror]
        images.run_with_progress(command, reporter, "debootstrap")
        shutil.copytree(VM_FILES / "overlay", root, dirs_exist_ok=True, symlinks=True)
        for target, source in ENGINE_DROPINS.items():
            (root / target.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / target.lstrip("/"))
        images.run_with_progress(["sh", str(VM_FILES / "customize.sh"), str(root)], reporter, "customize")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        shutil.copy(_only(root / "boot", "vmlinuz-*"), partial / "vmlinuz")
        shutil.copy(_only(root / "boot", "initrd.img-*"), partial / "initrd.img")
        raw = workdir / "base.raw"
        reporter.info(f"making the {ROOT_SIZE} root filesystem and its qcow2 image")
        _run(["truncate", "-s", ROOT_SIZE, str(raw)])
        _run(["mkfs.ext4", "-q", "-F", "-L", "swarmdeck-root", "-d", str(root), str(raw)])
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(partial / "base.qcow2")])
        for path in partial.iterdir():
            path.chmod(0o644)
        shutil.rmtree(image.folder, ignore_errors=True)
        partial.rename(image.folder)
    finally:
        images.unmount_below(root)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)


def seed_disk(files: list[File], target: Path) -> Path:
    """An ext4 image labelled SWDSEED holding ``files`` under ``files/`` (read at first boot
    by the image's swd-seed unit, which copies them into place owned by root)."""
    with tempfile.TemporaryDirectory(prefix="swarmdeck-seed-") as tmp:
        tree = Path(tmp) / "files"
        for file in files:
            path = tree / file.path.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(file.content)
            path.chmod(file.mode)
        target.unlink(missing_ok=True)
        _run(["mkfs.ext4", "-q", "-F", "-L", SEED_LABEL, "-d", tmp, str(target), "4M"])
    return target


def _only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise ImageError(f"expected one {pattern} in the image's /boot, found {[p.name for p in found]}")
    return found[0]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise ImageError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[-400:]}")


# -- the vagrant-libvirt box -------------------------------------------------------------------

BOX_USER = "vagrant"
BOX_FILES = ("box.img", "metadata.json", "Vagrantfile")


@dataclass(frozen=True)
class Box:
    """A vagrant-libvirt box of a VM image, with its own login key (no well-known key)."""

    image: VMImage

    @property
    def path(self) -> Path:
        return self.image.folder / "swarmdeck.box"

    @property
    def name(self) -> str:
        return f"swarmdeck/{self.image.name}"

    @property
    def key(self) -> Path:
        return self.image.folder / "vagrant_ed25519"


def ensure_box(reporter: Reporter, *, mirror: str | None = None, rebuild: bool = False,
               image: VMImage | None = None) -> Box:
    """The box of the current VM image (built from its disk in about 30 s, once).

    It is the VM image plus a ``vagrant`` user with passwordless sudo, who logs in with a
    key made for this box; Vagrant boots it like the libvirt provider does (direct kernel
    boot, see the top-level Vagrantfile).
    """
    box = Box(image or ensure_vm_image(reporter, mirror=mirror))
    if box.path.is_file() and box.key.is_file() and not rebuild:
        reporter.result(f"Vagrant box {box.path}", changed=False)
        return box
    with reporter.step(f"building the Vagrant box {box.name}"):
        _build_box(box)
        reporter.result(f"Vagrant box {box.path} ({box.path.stat().st_size >> 20} MiB)", changed=True)
    return box


def _build_box(box: Box) -> None:
    login = keys.ensure_keypair(box.key, "vagrant@swarmdeck-box")
    workdir = Path(tempfile.mkdtemp(prefix="swarmdeck-box-", dir="/var/tmp"))
    raw, mount = workdir / "root.raw", workdir / "root"
    try:
        _run(["qemu-img", "convert", "-O", "raw", str(box.image.disk), str(raw)])
        mount.mkdir()
        _run(["mount", "-o", "loop", str(raw), str(mount)])
        try:
            _add_box_user(mount, login.public_line)
        finally:
            _run(["umount", str(mount)])
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(workdir / "box.img")])
        (workdir / "metadata.json").write_text('{"provider": "libvirt", "format": "qcow2", "virtual_size": 8}\n')
        (workdir / "Vagrantfile").write_text((TEMPLATES / "vagrant" / "box-Vagrantfile").read_text())
        partial = box.path.with_suffix(".partial")
        _run(["tar", "-C", str(workdir), "-cf", str(partial), *BOX_FILES])
        partial.rename(box.path)
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _add_box_user(root: Path, public_line: str) -> None:
    _run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", "--user-group", BOX_USER])
    sudoers = root / "etc" / "sudoers.d" / BOX_USER
    sudoers.write_text(f"{BOX_USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    ssh = root / "home" / BOX_USER / ".ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys").write_text(public_line + "\n")
    (ssh / "authorized_keys").chmod(0o600)
    _run(["chroot", str(root), "chown", "-R", f"{BOX_USER}:{BOX_USER}", f"/home/{BOX_USER}/.ssh"])
