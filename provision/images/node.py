"""The node image: a Debian root with dockerd, containerd, sshd, runit and the registry.

Built offline with debootstrap from the machine's own Debian mirror (root only),
or with a Dockerfile where Docker Hub is reachable. Both run the same
``templates/node/finish.sh``. The tag is a hash of the recipe, so an image is
built once and rebuilt only when the recipe changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import docker
import docker.constants
import docker.errors

from provision.errors import ImageError
from provision.images import apt_mirror as mirrors
from provision.paths import TEMPLATES
from provision.progress import Reporter
from provision.render import render

SUITE = "bookworm"
REPOSITORY = "swarmdeck/node"
PACKAGES = (
    "docker.io", "containerd", "runc", "openssh-server", "iptables", "iproute2", "kmod",
    "docker-registry", "busybox-static", "tini", "runit", "ca-certificates", "procps", "iputils-ping", "haproxy",
)
NODE_FILES = TEMPLATES / "node"
CHANGES = (
    'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/sbin/swarmdeck-init"]',
    "LABEL io.swarmdeck.kind=node-image",
)
METHODS = ("auto", "debootstrap", "dockerfile")


def recipe_hash() -> str:
    """A digest of everything that goes into the node image."""
    digest = hashlib.sha256(f"{SUITE}\n{' '.join(PACKAGES)}\n{CHANGES}\n".encode())
    for path in sorted(p for p in NODE_FILES.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(NODE_FILES)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def node_image_tag() -> str:
    return f"{REPOSITORY}:{recipe_hash()}"


def has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_node_image(
    client: docker.DockerClient, reporter: Reporter, *, method: str = "auto", mirror: str | None = None,
    rebuild: bool = False,
) -> str:
    """Return the node image tag, building the image first when it is missing."""
    tag = node_image_tag()
    if has_image(client, tag) and not rebuild:
        reporter.result(f"node image {tag}", changed=False)
        return tag
    local = local_engine_with(tag, client) if not rebuild else None
    if local is not None:
        copy_image(local, client, tag, reporter)
        client.images.get(tag).tag(REPOSITORY, "latest")
        return tag
    chosen = choose_method(method)
    with reporter.step(f"building node image {tag} with {chosen} (about a minute, once)"):
        if chosen == "debootstrap":
            build_with_debootstrap(client, tag, mirror or mirrors.debian_mirror(SUITE), reporter)
        else:
            build_with_dockerfile(client, tag, reporter)
    client.images.get(tag).tag(REPOSITORY, "latest")
    return tag


def local_engine_with(tag: str, target: docker.DockerClient) -> docker.DockerClient | None:
    """This machine's own engine when it holds ``tag`` and is not ``target`` (a remote host's
    engine, reached over ``ssh://``): copying the image there beats building it again."""
    try:
        local = docker.DockerClient(base_url=docker.constants.DEFAULT_UNIX_SOCKET, timeout=600)
        if local.info()["ID"] == target.info()["ID"] or not has_image(local, tag):
            local.close()
            return None
        return local
    except (docker.errors.DockerException, OSError, KeyError):
        return None


COPY_REPORT_BYTES = 100 * 1024 * 1024


def copy_image(source: docker.DockerClient, target: docker.DockerClient, tag: str, reporter: Reporter) -> None:
    """``docker save | docker load`` through the SDK, streamed (never the whole image in memory),
    with a line of progress every 100 MB."""
    size = source.images.get(tag).attrs.get("Size", 0)
    with reporter.step(f"copying node image {tag} ({size // 2**20} MB) to the lab's engine"):
        sent = [0, COPY_REPORT_BYTES]

        def chunks():
            for chunk in source.api.get_image(tag, chunk_size=1024 * 1024):
                sent[0] += len(chunk)
                if sent[0] >= sent[1]:
                    reporter.info(f"{sent[0] // 2**20} MB of the node image sent")
                    sent[1] += COPY_REPORT_BYTES
                yield chunk

        for _ in target.api.load_image(chunks()):
            pass
    if not has_image(target, tag):
        raise ImageError(f"the node image {tag} did not arrive on the lab's engine after {sent[0]} bytes",
                            hint="see the engine's log on that host; `swarmdeck image.build` there builds it instead")


def choose_method(method: str) -> str:
    if method not in METHODS:
        raise ImageError(f"unknown image build method {method!r}: use one of {', '.join(METHODS)}")
    if method != "auto":
        return method
    return "debootstrap" if os.geteuid() == 0 and shutil.which("debootstrap") else "dockerfile"


def build_with_debootstrap(client: docker.DockerClient, tag: str, mirror: str, reporter: Reporter) -> None:
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        raise ImageError(
            "building the node image with debootstrap needs root and the debootstrap command",
            hint="run as root after `apt-get install debootstrap`, or use --method dockerfile where Docker Hub is reachable",
        )
    workdir = Path(tempfile.mkdtemp(prefix="swarmdeck-node-", dir="/var/tmp"))
    root = workdir / "root"
    try:
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror]
        run_with_progress(command, reporter, "debootstrap")
        shutil.copytree(NODE_FILES, root / "usr/local/share/swarmdeck-node")
        run_with_progress(["chroot", str(root), "sh", "/usr/local/share/swarmdeck-node/finish.sh"], reporter, "finish")
        unmount_below(root)
        reporter.info("importing the root filesystem into the engine")
        import_tree(client, root, tag, CHANGES)
    finally:
        unmount_below(root)
        shutil.rmtree(workdir, ignore_errors=True)


def build_with_dockerfile(client: docker.DockerClient, tag: str, reporter: Reporter, base: str | None = None) -> None:
    """Build from ``base`` (default ``debian:<suite>-slim``, pulled from Docker Hub)."""
    with tempfile.TemporaryDirectory(prefix="swarmdeck-node-") as context:
        shutil.copytree(NODE_FILES, context, dirs_exist_ok=True)
        dockerfile = render("node/Dockerfile.j2", base=base or f"debian:{SUITE}-slim", packages=PACKAGES,
                            changes=CHANGES)
        (Path(context) / "Dockerfile").write_text(dockerfile)
        try:
            for chunk in client.api.build(path=context, tag=tag, rm=True, forcerm=True, decode=True):
                if "stream" in chunk and chunk["stream"].startswith("Step "):
                    reporter.info(chunk["stream"].strip())
                if "error" in chunk:
                    raise ImageError(f"docker build of the node image failed: {chunk['error'].strip()}",
                                     hint="without Docker Hub, build offline as root: --method debootstrap")
        except docker.errors.APIError as err:
            raise ImageError(f"docker build of the node image failed: {err.explanation or err}",
                             hint="without Docker Hub, build offline as root: --method debootstrap") from err


def run_with_progress(command: list[str], reporter: Reporter, label: str) -> None:
    """Run ``command``, showing its latest line every few seconds; raise with its tail on failure."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    last_shown = time.monotonic()
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        if time.monotonic() - last_shown > 5:
            reporter.info(f"{label}: {line.strip()}")
            last_shown = time.monotonic()
    if proc.wait() != 0:
        tail = "\n".join(f"    | {line}" for line in lines[-15:])
        raise ImageError(f"{label} failed with exit code {proc.returncode}:\n{tail}",
                         hint="check that the Debian mirror is reachable (or pass --mirror)")


def import_tree(client: docker.DockerClient, root: Path, tag: str, changes: tuple[str, ...]) -> None:
    """``docker import`` the folder ``root`` as image ``tag`` with Dockerfile-style ``changes``."""
    proc = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    repository, _, version = tag.partition(":")
    try:
        client.api.import_image(src=_chunks(proc), repository=repository, tag=version, changes=list(changes),
                                stream_src=True)
    except docker.errors.APIError as err:
        raise ImageError(f"docker import of {tag} failed: {err.explanation or err}") from err
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
        proc.wait()
    if proc.returncode != 0:
        raise ImageError(f"tar of the root filesystem of {tag} failed with exit code {proc.returncode}")


def _chunks(proc: subprocess.Popen) -> Iterator[bytes]:
    while chunk := proc.stdout.read(1 << 20):  # type: ignore[union-attr]
        yield chunk


def unmount_below(root: Path) -> None:
    """Unmount whatever debootstrap left mounted under ``root`` (deepest first)."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
