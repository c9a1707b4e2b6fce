"""The vagrant-libvirt box of the VM image: the image plus a ``vagrant`` user with passwordless
sudo who logs in with a key made for this box (no well-known key)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from provision.images.vm import VMImage, ensure_vm_image, run_tool
from provision.paths import TEMPLATES
from provision.progress import Reporter
from provision.remote import keys

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
        run_tool(["qemu-img", "convert", "-O", "raw", str(box.image.disk), str(raw)])
        mount.mkdir()
        run_tool(["mount", "-o", "loop", str(raw), str(mount)])
        try:
            _add_box_user(mount, login.public_line)
        finally:
            run_tool(["umount", str(mount)])
        run_tool(["qemu-img", "convert", "-O", "qcow2", str(raw), str(workdir / "box.img")])
        (workdir / "metadata.json").write_text('{"provider": "libvirt", "format": "qcow2", "virtual_size": 8}\n')
        (workdir / "Vagrantfile").write_text((TEMPLATES / "vagrant" / "box-Vagrantfile").read_text())
        partial = box.path.with_suffix(".partial")
        run_tool(["tar", "-C", str(workdir), "-cf", str(partial), *BOX_FILES])
        partial.rename(box.path)
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _add_box_user(root: Path, public_line: str) -> None:
    run_tool(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", "--user-group", BOX_USER])
    sudoers = root / "etc" / "sudoers.d" / BOX_USER
    sudoers.write_text(f"{BOX_USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    ssh = root / "home" / BOX_USER / ".ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys").write_text(public_line + "\n")
    (ssh / "authorized_keys").chmod(0o600)
    run_tool(["chroot", str(root), "chown", "-R", f"{BOX_USER}:{BOX_USER}", f"/home/{BOX_USER}/.ssh"])
