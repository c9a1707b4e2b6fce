"""The tutorials' stand-ins without an engine: their Docker Hub names, recipes (FROM lines,
build order, the hash that caches them), labels; the Docker Hub cache's settings and its
offline path; what the registry says of a stand-in (a fake registry over HTTP); registry.ls."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker.errors
import pytest

from orchestrator.tables import RegistryEntry, registry_lines
from provision.errors import ImageError, SpecError
from provision.images import tutorial
from provision.lab_services import registry
from provision.paths import REPO
from provision.progress import RecordingReporter
from provision.spec import load as spec_load
from tests.unit.fakes import FakeHost

# Every Docker Hub image the tutorials in ../shared/seeds/ use, as they write it.
TUTORIAL_IMAGES = ("httpd", "httpd:latest", "nginx", "nginx:latest", "busybox", "hello-world", "registry",
                   "registry:2", "redis", "mysql:5.7", "wordpress", "wordpress:php7.4", "python:2.7-slim",
                   "friendlyhello", "gordon/get-started:part2", "dockersamples/visualizer",
                   "dockersamples/visualizer:stable")


@pytest.mark.parametrize("reference, expected", [
    ("nginx", "library/nginx:latest"),
    ("python:2.7-slim", "library/python:2.7-slim"),
    ("docker.io/library/redis", "library/redis:latest"),
    ("docker.io/gordon/get-started:part2", "gordon/get-started:part2"),
    ("dockersamples/visualizer", "dockersamples/visualizer:latest"),
    ("nginx@sha256:" + "a" * 64, "library/nginx:latest"),
])
def test_hub_names_are_the_full_names_an_engine_asks_its_mirror_for(reference, expected):
    assert tutorial.hub_name(reference) == expected


def test_every_image_of_the_tutorials_has_a_stand_in_but_node_6_which_is_explained():
    for image in TUTORIAL_IMAGES:
        assert tutorial.for_hub_name(image) is not None, image
    assert tutorial.for_hub_name("node:6") is None and tutorial.for_hub_name("alpine") is None
    assert "npm" in tutorial.NO_STAND_IN["library/node:6"] and "get-started" in tutorial.NO_STAND_IN["library/node:6"]
    names = [hub for stand_in in tutorial.STAND_INS for hub in stand_in.hub]
    assert len(names) == len(set(names)), "two stand-ins under one Docker Hub name"


def test_stand_ins_are_built_from_stand_ins_parents_first_in_waves():
    order = tutorial.ordered()
    assert order[0].name == tutorial.BASE and set(order) == set(tutorial.STAND_INS)
    for position, stand_in in enumerate(order):
        assert all(order.index(parent) < position for parent in tutorial.parents(stand_in))
    assert [p.name for p in tutorial.parents(tutorial.by_name("wordpress"))] == ["httpd"]
    assert [p.name for p in tutorial.parents(tutorial.by_name("busybox"))] == ["debian"]  # its build stage
    waves = [[s.name for s in wave] for wave in tutorial.waves(order)]
    assert waves[0] == ["debian"] and "httpd" in waves[1] and "wordpress" in waves[2]
    assert [[s.name for s in w] for w in tutorial.waves(tutorial.ordered((tutorial.by_name("get-started"),)))] == [
        ["debian"], ["python"], ["get-started"]]


def test_from_lines_name_local_stand_ins_and_nothing_from_docker_hub():
    busybox = tutorial.local_dockerfile(tutorial.by_name("busybox"))
    assert f"FROM {tutorial.local_tag(tutorial.by_name('debian'))} AS debian" in busybox
    assert "FROM scratch" in busybox and "COPY --from=debian /rootfs/ /" in busybox
    get_started = tutorial.local_dockerfile(tutorial.by_name("get-started"))
    assert f"FROM {tutorial.local_tag(tutorial.by_name('python'))}\n" in get_started
    assert "FROM python:2.7-slim" in tutorial.dockerfile(tutorial.by_name("get-started"))  # as the tutorial wrote it
    for stand_in in tutorial.STAND_INS[1:]:
        for match in tutorial.FROM_LINE.finditer(tutorial.local_dockerfile(stand_in)):
            assert match.group(2) == "scratch" or match.group(2).startswith(tutorial.LOCAL + "/"), stand_in.name


def test_a_recipe_from_an_image_without_a_stand_in_is_refused(tmp_path, monkeypatch):
    shutil.copytree(tutorial.RECIPES, tmp_path / "tutorial")
    monkeypatch.setattr(tutorial, "RECIPES", tmp_path / "tutorial")
    (tmp_path / "tutorial" / "redis" / "Dockerfile").write_text("FROM alpine:3.19\nRUN apk add redis\n")
    with pytest.raises(ImageError, match="built FROM alpine:3.19, which has no stand-in"):
        tutorial.parents(tutorial.by_name("redis"))


@pytest.fixture()
def recipes_copy(tmp_path, monkeypatch):
    """The recipes and the repository files they copy, in a folder the test may change."""
    for stand_in in tutorial.STAND_INS:
        for source in stand_in.sources:
            (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
            copy = shutil.copytree if (REPO / source).is_dir() else shutil.copy
            copy(REPO / source, tmp_path / source, **({"dirs_exist_ok": True} if (REPO / source).is_dir() else {}))
    shutil.copytree(tutorial.RECIPES, tmp_path / "templates" / "tutorial", dirs_exist_ok=True)
    monkeypatch.setattr(tutorial, "REPO", tmp_path)
    monkeypatch.setattr(tutorial, "RECIPES", tmp_path / "templates" / "tutorial")
    return tmp_path


def test_the_recipe_hash_covers_the_recipe_its_sources_and_its_parents(recipes_copy):
    before = {s.name: tutorial.recipe_hash(s) for s in tutorial.STAND_INS}
    assert before == {s.name: tutorial.recipe_hash(s) for s in tutorial.STAND_INS}  # stable
    assert len(set(before.values())) == len(before)

    (recipes_copy / "templates/tutorial/httpd/httpd.conf").write_text("Listen 8080\n")
    after = {s.name: tutorial.recipe_hash(s) for s in tutorial.STAND_INS}
    assert {name for name in before if before[name] != after[name]} == {"httpd", "wordpress"}

    (recipes_copy / "templates/tutorial/stand-in-page").write_text("#!/bin/sh\n")  # a file nginx and httpd copy
    (recipes_copy / "orchestrator/viz/feed.py").write_text("# changed\n")  # the visualizer's code
    again = {s.name: tutorial.recipe_hash(s) for s in tutorial.STAND_INS}
    assert {name for name in after if after[name] != again[name]} == {"nginx", "httpd", "wordpress", "visualizer"}

    (recipes_copy / "templates/tutorial/debian/finish.sh").write_text("set -eu\n")  # the base: every one
    assert all(again[s.name] != tutorial.recipe_hash(s) for s in tutorial.STAND_INS)
    nginx = tutorial.by_name("nginx")
    assert tutorial.recipe_hash(dataclasses.replace(nginx, what="something else")) != tutorial.recipe_hash(nginx)


def test_each_stand_in_is_labelled_with_what_it_really_is_and_its_recipe():
    for stand_in in tutorial.STAND_INS:
        labels = tutorial.labels(stand_in)
        assert labels == {tutorial.STAND_IN_LABEL: stand_in.what, tutorial.RECIPE_LABEL: tutorial.recipe_hash(stand_in)}
        assert tutorial.local_tag(stand_in) == f"swarmdeck/stand-in/{stand_in.name}:{tutorial.recipe_hash(stand_in)}"
    assert len({s.what for s in tutorial.STAND_INS}) == len(tutorial.STAND_INS)
    assert "MariaDB" in tutorial.by_name("mysql").what and "not Python 2.7" in tutorial.by_name("python").what


def test_the_visualizer_stand_in_runs_from_the_files_its_image_carries(tmp_path):
    """Its image holds only these files of swarmdeck (beside Debian's python3-docker): the
    visualizer must import and serve a local engine's swarm without the lab's modules."""
    for source in tutorial.by_name("visualizer").sources:
        target = tmp_path / source
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (REPO / source).is_dir() else shutil.copy)(REPO / source, target)
    check = f"""
import sys
from orchestrator.viz import server
from orchestrator.viz.feed import LocalEngine, SwarmFeed
assert server.STATIC.joinpath("index.html").is_file(), server.STATIC
state = SwarmFeed(LocalEngine({str(tmp_path / "no-engine.sock")!r})).refresh()
assert state["status"] == "unreachable" and state["lab"] == "swarm of this engine", state
ours = [m for m in sys.modules if m.split(".")[0] in ("provision", "orchestrator")]
assert all(sys.modules[m].__file__.startswith({str(tmp_path)!r}) for m in ours), ours
"""
    result = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr


# -- the Docker Hub cache ---------------------------------------------------------------------


def test_the_cache_needs_the_registry_its_own_port_and_a_registry_url():
    spec = spec_load.load_spec(None, {}, {"name": "c", "registry": {"cache": True}})
    assert (spec.registry.cache_port, spec.registry.cache_remote) == (5001, "https://registry-1.docker.io")
    with pytest.raises(SpecError) as caught:
        spec_load.load_spec(None, {}, {"name": "c", "registry": {
            "enabled": False, "cache": True, "cache_port": 5000, "cache_remote": "registry-1.docker.io"}})
    assert caught.value.problems == [
        "registry.cache needs the lab registry (registry.enabled): the cache runs beside it",
        "registry cache port 5000 must be a TCP port (1-65535) other than the registry's (5000)",
        "registry cache remote 'registry-1.docker.io' must be a registry's URL such as https://registry-1.docker.io"]
    assert spec_load.to_mapping(spec)["registry"]["cache"] is True


def test_the_cache_image_carries_the_ca_certificates_and_the_lab_registry_image_does_not():
    assert registry.CA_BUNDLE in registry.build_command(registry.CACHE_IMAGE)
    assert registry.CA_BUNDLE not in registry.build_command()
    assert registry.build_command(registry.CACHE_IMAGE).endswith(f"- {registry.CACHE_IMAGE} >/dev/null")
    cache = registry.cache_container("https://mirror.example")
    assert cache.environment == {"REGISTRY_PROXY_REMOTEURL": "https://mirror.example"}
    assert (cache.name, cache.volume) != (registry.CONTAINER, registry.VOLUME)


class _CacheEngine:
    """manager1's engine with the cache image and a cache container that restarts, as the
    proxy registry does when it cannot reach Docker Hub."""

    def __init__(self):
        self.containers, self.images = self, self
        self.logs_text = (b'time="2026-12-02T01:00:00Z" level=info msg="redis not configured"\n'
                          b'panic: Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: '
                          b'no such host\n')

    def get(self, name):
        if name == registry.CACHE_IMAGE:
            return object()
        assert name == registry.CACHE_CONTAINER
        return type("C", (), {"status": "restarting", "logs": lambda _, tail: self.logs_text})()


def test_offline_the_cache_is_a_warning_that_says_why_and_what_still_works():
    reporter = RecordingReporter()
    started = time.monotonic()
    changed = registry.ensure_cache(_CacheEngine(), FakeHost(), "127.0.0.1:9", "https://registry-1.docker.io",
                                    reporter, timeout=10)
    assert time.monotonic() - started < 3, "a cache that exited at start is not waited for"
    assert changed is False
    [warning] = reporter.kinds("warn")
    assert "the Docker Hub cache at 127.0.0.1:9 does not answer: panic: Get" in warning
    assert "distribution issue #4038" in warning and "served by the lab registry alone" in warning


# -- what the registry says of an image: a fake registry over HTTP ---------------------------------


class _FakeRegistry(BaseHTTPRequestHandler):
    images: dict[tuple[str, str], dict] = {}  # (repository, tag) -> image configuration

    def log_message(self, *_):
        pass

    def do_GET(self):  # noqa: N802
        parts = self.path.split("/")  # /v2/REPO.../manifests/TAG or /v2/REPO.../blobs/DIGEST
        repository, kind, last = "/".join(parts[2:-2]), parts[-2], parts[-1]
        configs = {self._digest(c): c for c in self.images.values()}
        if kind == "manifests" and (repository, last) in self.images:
            assert "manifest.v2+json" in self.headers["Accept"]
            body = {"schemaVersion": 2, "config": {"digest": self._digest(self.images[(repository, last)])}}
        elif kind == "blobs" and last in configs:
            body = configs[last]
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    @staticmethod
    def _digest(config: dict) -> str:
        return "sha256:" + hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


@pytest.fixture()
def fake_registry():
    nginx = {"config": {"Labels": {tutorial.STAND_IN_LABEL: "Debian's nginx-light"}}}
    _FakeRegistry.images = {("library/nginx", "latest"): nginx, ("swarmdeck/web", "1"): {"config": {"Labels": None}}}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", _FakeRegistry._digest(nginx)
    server.shutdown()
    server.server_close()


def test_the_registry_tells_an_images_configuration_digest_and_labels(fake_registry):
    address, nginx_digest = fake_registry
    assert registry.config_digest(address, "library/nginx", "latest") == nginx_digest
    assert registry.config_digest(address, "library/nginx", "1.25") is None
    assert registry.image_labels(address, "library/nginx", "latest") == {tutorial.STAND_IN_LABEL: "Debian's nginx-light"}
    assert registry.image_labels(address, "swarmdeck/web", "1") == {}
    assert registry.image_labels(address, "nothing/here", "1") == {}


def test_registry_ls_marks_stand_ins_with_what_they_are():
    lines = registry_lines([
        RegistryEntry("library/nginx", ["latest"], {"latest": "Debian's nginx-light"}),
        RegistryEntry("library/registry", ["2", "latest"], {"2": "Debian's docker-registry",
                                                            "latest": "Debian's docker-registry"}),
        RegistryEntry("library/redis", ["7", "latest"], {"latest": "Debian's redis-server"}),
        RegistryEntry("swarmdeck/web", ["1", "2", "3"], {}),
    ])
    assert lines == ["library/nginx: latest  (stand-in: Debian's nginx-light)",
                     "library/registry: 2, latest  (stand-in: Debian's docker-registry)",
                     "library/redis: 7, latest  (stand-in latest: Debian's redis-server)",
                     "swarmdeck/web: 1, 2, 3"]


def test_a_stand_in_already_in_the_registry_is_not_pushed_again(monkeypatch):
    from orchestrator import create
    from provision.plan import plan as lab_plan
    plan = lab_plan(spec_load.load_spec(None, {}, {"name": "t"}), "10.199.9.0/24", 1500)
    nginx, redis = tutorial.by_name("nginx"), tutorial.by_name("redis")
    built = [tutorial.Built(nginx, "swarmdeck/stand-in/nginx:1", "sha256:n"),
             tutorial.Built(redis, "swarmdeck/stand-in/redis:1", "sha256:r")]
    held = {("library/nginx", "latest"): "sha256:n", ("library/redis", "latest"): "sha256:old"}
    monkeypatch.setattr(create.registry, "check_running", lambda *_: None)
    monkeypatch.setattr(create.registry, "config_digest", lambda _a, repo, tag, timeout: held.get((repo, tag)))
    monkeypatch.setattr(create.engine_clients, "host_client", lambda _lab: "local")
    monkeypatch.setattr(create.engine_clients, "node_client", lambda *_a, **_k: type("M", (), {"close": lambda _: None})())
    pushed = {}
    monkeypatch.setattr(create.registry, "push_many", lambda _s, _t, _a, names, _r: pushed.update(names))
    clients = type("Clients", (), {"__getitem__": lambda self, node: None})()
    reporter = RecordingReporter()
    references = create.push_stand_ins(plan, clients, built, reporter)
    assert pushed == {"swarmdeck/stand-in/redis:1": ["library/redis:latest"]}  # nginx is there already
    assert references == ["10.199.9.10:5000/library/nginx:latest", "10.199.9.10:5000/library/redis:latest"]
    assert not [line for line in reporter.kinds("info") if line.startswith("skipped")]
    held[("library/redis", "latest")] = "sha256:r"  # pushed: a second run pushes nothing and says so
    pushed.clear()
    again = RecordingReporter()
    assert create.push_stand_ins(plan, clients, built, again) == references and pushed == {}
    assert again.kinds("info") == ["skipped pushing: the lab registry holds the 2 stand-ins already, the same "
                                   "images under their 2 Docker Hub names"]
    assert not again.kinds("changed") and not again.kinds("step")


def test_stand_ins_built_already_are_not_built_again_and_the_run_says_so(monkeypatch):
    held = {tutorial.local_tag(s) for s in tutorial.ordered((tutorial.by_name("hello-world"),))}
    built = []
    monkeypatch.setattr(tutorial.node_images, "has_image", lambda _client, tag: tag in held)
    monkeypatch.setattr(tutorial, "_build", lambda _c, stand_in, _m, _r: built.append(stand_in.name))
    images = type("Images", (), {"get": lambda self, tag: type("Image", (), {"id": f"sha256:{tag}"})()})()
    client = type("Client", (), {"images": images})()
    reporter = RecordingReporter()
    found = tutorial.ensure_stand_ins(client, reporter, names=("hello-world",))
    assert built == [] and [item.stand_in.name for item in found] == ["debian", "busybox", "hello-world"]
    assert reporter.kinds("info") == [
        "skipped building: the 3 stand-ins are built already (each tagged with the hash of its recipe, built "
        "again only when the recipe changes; --rebuild builds anew)"]
    assert len(reporter.kinds("ok")) == 3
    rebuilt = RecordingReporter()
    tutorial.ensure_stand_ins(client, rebuilt, names=("hello-world",), rebuild=True)
    assert built == ["debian", "busybox", "hello-world"] and not rebuilt.kinds("info")


def test_an_unknown_stand_in_is_refused_before_anything_is_built(monkeypatch):
    from orchestrator import usecases
    monkeypatch.setattr(usecases.engine_clients, "host_client", lambda _lab: pytest.fail("no engine needed"))
    with pytest.raises(ImageError, match="no stand-in named 'mongo': there are debian, busybox"):
        usecases.tutorial_images_for("t", RecordingReporter(), only=("nginx", "mongo"))


def test_docker_errors_of_a_build_name_the_stand_in(monkeypatch):
    class Api:
        def build(self, **_):
            yield {"stream": "Step 1/3 : FROM x\n"}
            yield {"error": "E: Unable to locate package nginx-light"}

    client = type("Client", (), {"api": Api()})()
    with pytest.raises(ImageError, match="building the nginx stand-in failed: E: Unable to locate package"):
        tutorial._build_recipe(client, tutorial.by_name("nginx"), "t:1", RecordingReporter())

    class Refused:
        def build(self, **_):
            raise docker.errors.APIError("500", explanation="no space left on device")

    with pytest.raises(ImageError, match="no space left on device"):
        tutorial._build_recipe(type("Client", (), {"api": Refused()})(), tutorial.by_name("redis"), "t:1",
                               RecordingReporter())
