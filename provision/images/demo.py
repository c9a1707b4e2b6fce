"""The demo images ``swarmdeck/web:1``, ``:2`` and ``:3``, built offline from scratch.

Each is busybox httpd with a CGI page answering ``swarmdeck-web version=N
container=ID node=NAME`` and a healthcheck. Version 3 is deliberately broken:
its healthcheck path is missing, so it never becomes healthy (for the
rolling-update demo). The busybox binary comes from the node image, so no
download is needed on any host.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import tempfile
from pathlib import Path

import docker
import docker.errors

from provision.errors import ImageError
from provision.paths import TEMPLATES
from provision.progress import Reporter
from provision.render import render

REPOSITORY = "swarmdeck/web"
VERSIONS = ("1", "2", "3")
BROKEN = "3"
WEB_FILES = TEMPLATES / "web"


def recipe_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in WEB_FILES.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def demo_tags() -> list[str]:
    return [f"{REPOSITORY}:{v}" for v in VERSIONS]


def ensure_demo_images(client: docker.DockerClient, node_image: str, reporter: Reporter) -> list[str]:
    """Build whichever demo image is missing or stale; return all their tags."""
    recipe = recipe_hash()
    missing = [v for v in VERSIONS if _recipe_of(client, f"{REPOSITORY}:{v}") != recipe]
    if not missing:
        reporter.result(f"demo images {', '.join(demo_tags())}", changed=False)
        return demo_tags()
    with reporter.step(f"building demo images {REPOSITORY}:{','.join(missing)}"):
        with tempfile.TemporaryDirectory(prefix="swarmdeck-web-") as tmp:
            busybox = _busybox_from(client, node_image, Path(tmp))
            for version in missing:
                _build(client, version, recipe, busybox, Path(tmp) / version)
    return demo_tags()


def _recipe_of(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return (client.images.get(tag).labels or {}).get("io.swarmdeck.recipe")
    except docker.errors.ImageNotFound:
        return None


def _busybox_from(client: docker.DockerClient, node_image: str, folder: Path) -> Path:
    container = client.containers.create(node_image, ["true"], entrypoint=[], labels={"io.swarmdeck.kind": "probe"})
    try:
        stream, _ = container.get_archive("/bin/busybox")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.extractfile("busybox")
            if member is None:
                raise ImageError(f"{node_image} has no /bin/busybox to build the demo images from")
            target = folder / "busybox"
            target.write_bytes(member.read())
            target.chmod(0o755)
            return target
    finally:
        container.remove(force=True)


def _build(client: docker.DockerClient, version: str, recipe: str, busybox: Path, context: Path) -> None:
    www = context / "www" / "cgi-bin"
    www.mkdir(parents=True)
    shutil.copy(busybox, context / "busybox")
    shutil.copy(WEB_FILES / "serve", context / "serve")
    note = " (broken: its healthcheck always fails)" if version == BROKEN else ""
    (www / "index.cgi").write_text(render("web/index.cgi.j2", note=note))
    (www / "index.cgi").chmod(0o755)
    if version != BROKEN:
        shutil.copy(WEB_FILES / "health.cgi", www / "health.cgi")
    (context / "Dockerfile").write_text(render("web/Dockerfile.j2", version=version, recipe=recipe))
    try:
        client.images.build(path=str(context), tag=f"{REPOSITORY}:{version}", rm=True, forcerm=True)
    except (docker.errors.BuildError, docker.errors.APIError) as err:
        raise ImageError(f"building {REPOSITORY}:{version} failed: {err}") from err
