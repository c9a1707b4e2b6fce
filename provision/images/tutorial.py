"""Stand-ins for the Docker Hub images the tutorials use, built offline from Debian packages.

The tutorials (``../shared/seeds/``) run ``nginx``, ``httpd``, ``busybox``, ``registry``,
``redis``, ``mysql:5.7``, ``wordpress:php7.4``, the get-started app and
``dockersamples/visualizer``, all from Docker Hub, which a class offline cannot reach. Each
stand-in is built on this machine from its Debian mirror and pushed to the lab registry
under the Hub's own name (``library/nginx:latest``); the node engines list that registry
as a registry mirror (``templates/docker/daemon.json.j2``), so the tutorials' commands run
as written. Each honours the interface the tutorials use (ports, folders, environment
variables, commands), says what it really is in its ``io.swarmdeck.stand-in`` label, and
is small: they share one base layer, a Debian root made with debootstrap and imported once
(the stand-in for ``debian:bookworm-slim``), and stand-ins that share more share more
(wordpress is FROM httpd, the visualizer and the get-started app FROM python).

A recipe is a folder under ``templates/tutorial/``: a Dockerfile written with the Hub's
names, exactly as for Docker Hub (``FROM python:2.7-slim``), and its files. The builder
rewrites each FROM naming another stand-in to that stand-in's local tag
(``swarmdeck/stand-in/NAME:HASH``), so nothing is pulled. The tag's hash covers the
recipe, the files of this repository it copies (the visualizer's code) and its parents'
hashes: an image is built once and again only when its recipe changes.

The Angular app of the first tutorial builds FROM node:6 and runs ``npm install``, which
needs the npm registry at build time: it has no stand-in (see ``NO_STAND_IN``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from provision.errors import ImageError, PartialFailure
from provision.images import apt_mirror as mirrors
from provision.images import node as node_images
from provision.parallel import fan_out
from provision.paths import REPO, TEMPLATES
from provision.progress import Reporter

SUITE = node_images.SUITE
RECIPES = TEMPLATES / "tutorial"
LOCAL = "swarmdeck/stand-in"  # this machine's tags: swarmdeck/stand-in/NAME:HASH
STAND_IN_LABEL = "io.swarmdeck.stand-in"  # what the image really is (registry.ls shows it)
RECIPE_LABEL = "io.swarmdeck.recipe"
BASE = "debian"  # the recipe built with debootstrap; every other one is a Dockerfile
BASE_CHANGES = (  # what Docker Hub's debian images set
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["bash"]',
)
FROM_LINE = re.compile(r"^(\s*FROM\s+(?:--platform=\S+\s+)?)(\S+)(.*)$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class StandIn:
    """One stand-in: its recipe folder ``templates/tutorial/NAME``, the Docker Hub names it is
    pushed under, what it really is, and the files of this repository its build copies."""

    name: str
    hub: tuple[str, ...]
    what: str
    sources: tuple[str, ...] = ()

    @property
    def folder(self) -> Path:
        return RECIPES / self.name


STAND_INS = (
    StandIn("debian", ("library/debian:bookworm-slim",),
            "Debian bookworm (minbase, no docs) made with debootstrap from this machine's Debian mirror"),
    StandIn("busybox", ("library/busybox:latest",), "Debian's busybox-static on an empty root"),
    StandIn("hello-world", ("library/hello-world:latest",), "a shell script printing Docker's greeting"),
    StandIn("nginx", ("library/nginx:latest",),
            "Debian's nginx-light in the Hub image's layout; its page names the container and node",
            ("templates/tutorial/stand-in-page",)),
    StandIn("httpd", ("library/httpd:latest",),
            "Debian's Apache httpd in the Hub image's layout (/usr/local/apache2); its page names the "
            "container and node", ("templates/tutorial/stand-in-page",)),
    StandIn("registry", ("library/registry:2", "library/registry:latest"),
            "Debian's docker-registry (distribution 2.8) with the Hub image's configuration"),
    StandIn("redis", ("library/redis:latest",), "Debian's redis-server, data in /data"),
    StandIn("mysql", ("library/mysql:5.7",),
            "MariaDB from Debian, set up from MYSQL_* on first start as the Hub image is"),
    StandIn("wordpress", ("library/wordpress:latest", "library/wordpress:php7.4"),
            "Debian's wordpress with Apache and PHP 8.2, configured from WORDPRESS_DB_*"),
    StandIn("python", ("library/python:2.7-slim",),
            "Debian's Python 3 with Flask and Redis installed (for the get-started Dockerfile), not Python 2.7"),
    StandIn("get-started", ("gordon/get-started:part2", "library/friendlyhello:latest"),
            "the get-started app (Flask + Redis) built from the tutorial's Dockerfile on the python stand-in"),
    StandIn("visualizer", ("dockersamples/visualizer:stable", "dockersamples/visualizer:latest"),
            "swarmdeck's visualizer (orchestrator/viz) for the swarm of the engine whose socket it is given",
            ("orchestrator/__init__.py", "orchestrator/viz/__init__.py", "orchestrator/viz/feed.py",
             "orchestrator/viz/server.py", "provision/__init__.py", "provision/paths.py", "templates/viz")),
)

# What the tutorials use that cannot be stood in for offline, with what to show instead.
NO_STAND_IN = {
    "library/node:6": (
        "The Angular app's Dockerfile (FROM node:6, `npm install`) downloads its packages from the npm "
        "registry while it builds, so it cannot be built offline and has no stand-in. The closest offline "
        "equivalent is the get-started app: a web app built on the lab from its own Dockerfile "
        "(templates/tutorial/get-started/), run as a service, scaled and load-balanced the same way "
        "(its port 80 in place of the Angular app's 4200)."
    ),
}


@dataclass(frozen=True)
class Built:
    """A stand-in as this machine's engine holds it."""

    stand_in: StandIn
    tag: str
    image_id: str


def hub_name(reference: str) -> str:
    """Docker Hub's full name of ``reference``, as an engine resolves a short name:
    ``nginx`` -> ``library/nginx:latest``, ``docker.io/gordon/get-started:part2`` ->
    ``gordon/get-started:part2`` (a digest is dropped)."""
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if reference.startswith(prefix):
            reference = reference[len(prefix):]
    reference = reference.split("@", 1)[0]
    name, tag = reference.rsplit(":", 1) if ":" in reference.rsplit("/", 1)[-1] else (reference, "latest")
    return f"{name if '/' in name else 'library/' + name}:{tag}"


def by_name(name: str) -> StandIn:
    for stand_in in STAND_INS:
        if stand_in.name == name:
            return stand_in
    raise ImageError(f"no stand-in named {name!r}: there are {', '.join(s.name for s in STAND_INS)}")


def for_hub_name(reference: str) -> StandIn | None:
    """The stand-in pushed under ``reference``'s Hub name, if any."""
    wanted = hub_name(reference)
    return next((s for s in STAND_INS if wanted in s.hub), None)


def dockerfile(stand_in: StandIn) -> str:
    return (stand_in.folder / "Dockerfile").read_text()


def parents(stand_in: StandIn) -> list[StandIn]:
    """The stand-ins its Dockerfile builds FROM (build stages and ``scratch`` are not images)."""
    if stand_in.name == BASE:
        return []
    found, stages = [], set()
    for match in FROM_LINE.finditer(dockerfile(stand_in)):
        image, rest = match.group(2), match.group(3).split()
        if image != "scratch" and image not in stages:
            parent = for_hub_name(image)
            if parent is None:
                raise ImageError(f"the {stand_in.name} stand-in is built FROM {image}, which has no stand-in",
                                 hint=f"build it FROM one of {', '.join(s.hub[0] for s in STAND_INS)}")
            if parent not in found:
                found.append(parent)
        if len(rest) >= 2 and rest[0].upper() == "AS":
            stages.add(rest[1])
    return found


def ordered(stand_ins: tuple[StandIn, ...] = STAND_INS) -> list[StandIn]:
    """``stand_ins`` and their parents, each after its parents."""
    done: list[StandIn] = []

    def visit(stand_in: StandIn) -> None:
        if stand_in not in done:
            for parent in parents(stand_in):
                visit(parent)
            done.append(stand_in)

    for stand_in in stand_ins:
        visit(stand_in)
    return done


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def recipe_hash(stand_in: StandIn) -> str:
    """A digest of everything that goes into the image: the suite, what it says it is, its
    recipe folder, the repository files it copies and its parents' hashes."""
    digest = hashlib.sha256(f"{SUITE}\n{stand_in.name}\n{STAND_IN_LABEL}={stand_in.what}\n".encode())
    if stand_in.name == BASE:
        digest.update(f"{BASE_CHANGES}\n".encode())
    for path in _files(stand_in.folder):
        digest.update(str(path.relative_to(stand_in.folder)).encode() + b"\0" + path.read_bytes())
    for source in stand_in.sources:
        for path in _files(REPO / source):
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    for parent in parents(stand_in):
        digest.update(f"FROM {recipe_hash(parent)}\n".encode())
    return digest.hexdigest()[:12]


def local_tag(stand_in: StandIn) -> str:
    return f"{LOCAL}/{stand_in.name}:{recipe_hash(stand_in)}"


def labels(stand_in: StandIn) -> dict[str, str]:
    """The image's labels: that it is a stand-in and what it really is; its recipe."""
    return {STAND_IN_LABEL: stand_in.what, RECIPE_LABEL: recipe_hash(stand_in)}


def local_dockerfile(stand_in: StandIn) -> str:
    """The recipe's Dockerfile with each FROM naming a stand-in rewritten to its local tag."""
    def local(match: re.Match) -> str:
        parent = for_hub_name(match.group(2)) if match.group(2) != "scratch" else None
        return match.group(1) + (local_tag(parent) if parent else match.group(2)) + match.group(3)

    return FROM_LINE.sub(local, dockerfile(stand_in))


BUILD_WORKERS = 3  # builds at once: apt downloads of one overlap another's unpacking, on a 2-core machine


def waves(stand_ins: list[StandIn]) -> list[list[StandIn]]:
    """``stand_ins`` (parents included) in waves: each one's parents are in earlier waves, so a
    wave's stand-ins can be built at the same time."""
    level: dict[str, int] = {}
    for stand_in in ordered(tuple(stand_ins)):
        level[stand_in.name] = 1 + max((level[p.name] for p in parents(stand_in)), default=-1)
    found: list[list[StandIn]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for stand_in in ordered(tuple(stand_ins)):
        found[level[stand_in.name]].append(stand_in)
    return found


def ensure_stand_ins(client: docker.DockerClient, reporter: Reporter, *, names: tuple[str, ...] = (),
                     mirror: str | None = None, rebuild: bool = False) -> list[Built]:
    """Build whichever stand-in (of ``names``, default all) is missing, parents first, up to
    BUILD_WORKERS at once; return every one with its parents as this engine holds them.

    Raises:
        ImageError: naming each stand-in whose build failed, with its error.
    """
    wanted = ordered(tuple(by_name(n) for n in names) if names else STAND_INS)
    built = 0
    for wave in waves(wanted):
        missing = [s for s in wave if rebuild or not node_images.has_image(client, local_tag(s))]
        for stand_in in wave:
            if stand_in not in missing:
                reporter.result(f"stand-in {stand_in.name} ({local_tag(stand_in)})", changed=False)
        try:
            fan_out(missing, lambda s: _build(client, s, mirror, reporter), name=lambda s: s.name,
                    what="building stand-ins", workers=BUILD_WORKERS)
        except PartialFailure as err:
            raise ImageError("building stand-ins failed: " + "; ".join(
                f"{name}: {error}" for name, error in sorted(err.failures.items()))) from err
        built += len(missing)
    if not built:
        reporter.info(f"skipped building: the {len(wanted)} stand-ins are built already (each tagged with the "
                      "hash of its recipe, built again only when the recipe changes; --rebuild builds anew)")
    return [Built(s, local_tag(s), client.images.get(local_tag(s)).id) for s in wanted]


def _build(client: docker.DockerClient, stand_in: StandIn, mirror: str | None, reporter: Reporter) -> None:
    tag = local_tag(stand_in)
    with reporter.step(f"building stand-in {stand_in.name} ({tag})"):
        if stand_in.name == BASE:
            _build_base(client, tag, mirror or mirrors.debian_mirror(SUITE), reporter)
        else:
            _build_recipe(client, stand_in, tag, reporter)


def _build_base(client: docker.DockerClient, tag: str, mirror: str, reporter: Reporter) -> None:
    """debootstrap a minimal Debian root from ``mirror``, slim it, import it as ``tag``."""
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        raise ImageError("building the stand-ins' Debian base needs root and the debootstrap command",
                         hint="run as root after `apt-get install debootstrap`")
    workdir = Path(tempfile.mkdtemp(prefix="swarmdeck-stand-in-", dir="/var/tmp"))
    root = workdir / "root"
    try:
        node_images.run_with_progress(["debootstrap", "--variant=minbase", SUITE, str(root), mirror], reporter,
                                      "debootstrap")
        shutil.copy(by_name(BASE).folder / "finish.sh", root / "finish.sh")
        node_images.run_with_progress(["chroot", str(root), "sh", "/finish.sh"], reporter, "finish")
        (root / "finish.sh").unlink()
        node_images.unmount_below(root)
        reporter.info("importing the root filesystem into the engine")
        base = by_name(BASE)
        changes = (*BASE_CHANGES, *(f"LABEL {key}={_quoted(value)}" for key, value in labels(base).items()))
        node_images.import_tree(client, root, tag, changes)
    finally:
        node_images.unmount_below(root)
        shutil.rmtree(workdir, ignore_errors=True)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _build_recipe(client: docker.DockerClient, stand_in: StandIn, tag: str, reporter: Reporter) -> None:
    """``docker build`` the recipe folder, plus the repository files it names, FROM the local
    stand-ins (nothing is pulled: ``pull=False``, and every FROM names a local tag)."""
    with tempfile.TemporaryDirectory(prefix=f"swarmdeck-stand-in-{stand_in.name}-") as context:
        shutil.copytree(stand_in.folder, context, dirs_exist_ok=True)
        for source in stand_in.sources:
            for path in _files(REPO / source):
                target = Path(context) / path.relative_to(REPO)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        (Path(context) / "Dockerfile").write_text(local_dockerfile(stand_in))
        try:
            for chunk in client.api.build(path=context, tag=tag, labels=labels(stand_in), pull=False, rm=True,
                                          forcerm=True, decode=True):
                if "stream" in chunk and chunk["stream"].startswith("Step "):
                    reporter.info(f"{stand_in.name}: {chunk['stream'].strip()}")
                if "error" in chunk:
                    raise ImageError(f"building the {stand_in.name} stand-in failed: {chunk['error'].strip()}",
                                     hint="is the Debian mirror in /etc/apt/sources.list reachable from "
                                          "containers on this machine's engine?")
        except docker.errors.APIError as err:
            raise ImageError(f"building the {stand_in.name} stand-in failed: {err.explanation or err}") from err
