import pytest
import yaml

from orchestrator import services, stacks, swarm
from provision import doctor
from provision import plan as machine
from provision.errors import LabError, ProviderError
from provision.lab_services import entry_point as entrypoint
from provision.spec import load as spec_load


@pytest.mark.parametrize("text, expected", [
    ("8080:80", services.Publish(8080, 80, "ingress", "tcp")),
    ("53:53/udp", services.Publish(53, 53, "ingress", "udp")),
    ("8080:80:host", services.Publish(8080, 80, "host", "tcp")),
    ("9000:9000/udp:host", services.Publish(9000, 9000, "host", "udp")),
])
def test_publish_reads_like_docker_p(text, expected):
    assert services.Publish.parse(text) == expected


def test_publish_rejects_nonsense():
    with pytest.raises(LabError, match="PUBLISHED:TARGET"):
        services.Publish.parse("eighty")


def test_service_request_lists_every_problem():
    request = services.ServiceRequest("web", "img", replicas=-1, endpoint_mode="lb", update_order="random",
                                      update_failure_action="panic", publish=(services.Publish(80, 80),))
    problems = request.problems()
    assert len(problems) == 4
    dnsrr = services.ServiceRequest("web", "img", endpoint_mode="dnsrr", publish=(services.Publish(80, 80),))
    assert "needs host-mode ports" in dnsrr.problems()[0]
    assert services.ServiceRequest("web", "img", replicas=None).problems() == []


class FakeLab:
    def __init__(self, registry=True, mtu=1500):
        spec = spec_load.load_spec(None, {}, {"name": "t1", "registry": {"enabled": registry}})
        self.plan = machine.plan(spec, "10.199.9.0/24", mtu, shares_kernel=True)  # container nodes


@pytest.mark.parametrize("with_ipvs, mode", [(True, "ingress"), (False, "host")])
def test_shipped_stacks_render_for_the_kernel(monkeypatch, with_ipvs, mode):
    monkeypatch.setattr(stacks.entrypoint.ipvs, "available", lambda: with_ipvs)
    for stack in stacks.shipped():
        compose = yaml.safe_load(stacks.compose_text(FakeLab(mtu=1400), stack))
        for service in compose["services"].values():
            assert service["image"].startswith("10.199.9.10:5000/swarmdeck/web:")
            for port in service.get("ports", []):
                assert port["mode"] == mode
            if mode == "host" and service.get("ports"):
                assert service["deploy"]["mode"] == "global"  # one task per node: no port clash
        if mode == "host":  # shipped as the lab allows: nothing for the no-mesh rewrite to change
            from orchestrator import meshless
            assert meshless.rewrite(stacks.compose_text(FakeLab(mtu=1400), stack), []).changes == []
    counter = yaml.safe_load(stacks.compose_text(FakeLab(mtu=1400), "counter"))
    assert counter["networks"]["backend"]["driver_opts"]["com.docker.network.driver.mtu"] == "1350"
    assert counter["services"]["store"]["deploy"]["placement"]["constraints"] == ["node.role == manager"]


def test_stacks_need_the_lab_registry_and_a_real_file():
    assert set(stacks.shipped()) >= {"web", "counter"}
    with pytest.raises(LabError, match="runs none"):
        stacks.compose_text(FakeLab(registry=False), "web")
    with pytest.raises(LabError, match="no stack file"):
        stacks.compose_text(FakeLab(), "/nonexistent.yml")


def test_overlay_mtu_leaves_room_for_vxlan():
    assert swarm.overlay_mtu(1500) == 1450 and swarm.overlay_mtu(1400) == 1350


# -- the image check before a service is created -------------------------------------------------

import docker.errors  # noqa: E402

from provision.progress import RecordingReporter  # noqa: E402

CATALOG = {"swarmdeck/web": ["1", "2", "3"]}


class FakeImages:
    def __init__(self, present):
        self.present, self.asked = set(present), []

    def get(self, reference):
        self.asked.append(reference)
        if reference not in self.present:
            raise docker.errors.ImageNotFound(f"No such image: {reference}")


class FakeEngine:
    def __init__(self, present=(), resolvable=()):
        self.images = FakeImages(present)
        self.resolvable, self.looked_up = set(resolvable), []
        self.created = []
        self.api = self

    def inspect_distribution(self, reference):
        self.looked_up.append(reference)
        if reference not in self.resolvable:
            raise docker.errors.APIError("500", explanation='Get "https://registry-1.docker.io/v2/": dial tcp: '
                                                              "lookup registry-1.docker.io: no such host")
        return {"Descriptor": {"digest": "sha256:abc"}}


class FakeSession(FakeLab):
    """A LabSession's plan, node clients and manager: images on nodes by name."""

    def __init__(self, on_nodes=None, resolvable=(), registry=True):
        super().__init__(registry=registry)
        on_nodes = on_nodes or {}
        self.clients = {n.name: FakeEngine(on_nodes.get(n.name, ())) for n in self.plan.nodes}
        self.clients = _ByNode(self.clients)
        self.manager = FakeEngine(resolvable=resolvable)


class _ByNode(dict):
    def __getitem__(self, node):
        return super().__getitem__(node if isinstance(node, str) else node.name)


@pytest.fixture
def catalog(monkeypatch):
    asked = []

    def fake_catalog(address):
        asked.append(address)
        return CATALOG

    monkeypatch.setattr(services.registry, "catalog", fake_catalog)
    return asked


def test_a_lab_registry_image_needs_that_tag_there(catalog):
    lab = FakeSession()
    assert services.checked_image(lab, "swarmdeck/web:2", RecordingReporter()) == "10.199.9.10:5000/swarmdeck/web:2"
    with pytest.raises(LabError) as caught:
        services.checked_image(lab, "swarmdeck/web:9", RecordingReporter())
    assert str(caught.value) == "the lab registry 10.199.9.10:5000 has no tag '9' of swarmdeck/web (its tags: 1, 2, 3)"
    assert "registry.push swarmdeck/web:9 --lab t1" in caught.value.hint
    with pytest.raises(LabError, match="has no image swarmdeck/db .it holds: swarmdeck/web."):
        services.checked_image(lab, "10.199.9.10:5000/swarmdeck/db:1", RecordingReporter())
    assert lab.manager.looked_up == []  # the registry's own list decides


def test_another_image_is_accepted_when_a_node_has_it_or_a_manager_resolves_it(catalog):
    everywhere = FakeSession(on_nodes={n: ["nginx:1"] for n in ("manager1", "manager2", "manager3", "worker1", "worker2")})
    assert services.checked_image(everywhere, "nginx:1", RecordingReporter()) == "nginx:1"
    assert everywhere.manager.looked_up == []  # on every node: nothing to resolve
    resolvable = FakeSession(resolvable=["nginx:1"])
    assert services.checked_image(resolvable, "nginx:1", RecordingReporter()) == "nginx:1"
    one_node = FakeSession(on_nodes={"worker1": ["nginx:1"]})
    reporter = RecordingReporter()
    assert services.checked_image(one_node, "nginx:1", reporter) == "nginx:1"
    assert "only on worker1" in reporter.kinds("warn")[0] and "registry.push nginx:1" in reporter.kinds("warn")[0]


def test_an_image_no_node_could_get_is_refused_saying_what_was_tried(catalog):
    lab = FakeSession()
    with pytest.raises(LabError) as caught:
        services.checked_image(lab, "nginx:latest", RecordingReporter())
    text = str(caught.value)
    assert text.startswith("cannot create a service of image nginx:latest: it is on no node of lab t1, and the "
                           "manager could not resolve it in a registry")
    assert "no such host" in text
    assert "registry.push nginx:latest --lab t1" in caught.value.hint and "no other registry" in caught.value.hint
    assert lab.manager.looked_up == ["nginx:latest"]
    assert all(c.images.asked == ["nginx:latest"] for c in lab.clients.values())


def test_a_silent_lab_registry_is_named_in_the_refusal(monkeypatch):
    def silent(address):
        raise ProviderError(f"the registry at {address} did not answer: connection refused")

    monkeypatch.setattr(services.registry, "catalog", silent)
    with pytest.raises(LabError, match="did not answer"):
        services.checked_image(FakeSession(), "10.199.9.10:5000/swarmdeck/web:1", RecordingReporter())
    with pytest.raises(LabError, match="the lab registry did not answer either"):
        services.checked_image(FakeSession(), "swarmdeck/web:1", RecordingReporter())


class FakeServices:
    def __init__(self):
        self.created = []

    def list(self, **_):
        return []

    def create(self, image, **kwargs):
        self.created.append(image)


def test_create_service_refuses_before_anything_is_created(catalog):
    lab = FakeSession()
    lab.manager.services = FakeServices()
    with pytest.raises(LabError, match="no tag '9'"):
        services.create_service(lab, services.ServiceRequest("web", "swarmdeck/web:9", 3), RecordingReporter())
    assert lab.manager.services.created == []


@pytest.mark.parametrize("image, expected", [
    ("swarmdeck/web:1", ("swarmdeck/web", "1")), ("swarmdeck/web", ("swarmdeck/web", "latest")),
    ("10.0.0.10:5000/web", ("10.0.0.10:5000/web", "latest")), ("10.0.0.10:5000/web:2", ("10.0.0.10:5000/web", "2")),
    ("web@sha256:abc", ("web", None)), ("web:1@sha256:abc", ("web", None)),
])
def test_split_reference(image, expected):
    assert services.split_reference(image) == expected


# -- no routing mesh: warn where it applies (stacks are rewritten instead: test_lessons.py) -------


@pytest.mark.parametrize("provider, with_ipvs, warned", [("docker", False, True), ("docker", True, False),
                                                         ("libvirt", False, False)])
def test_the_no_mesh_warning_only_where_it_applies(monkeypatch, provider, with_ipvs, warned):
    monkeypatch.setattr(services.entrypoint.ipvs, "available", lambda: with_ipvs)
    lab = FakeLab()
    lab.plan = machine.plan(spec_load.load_spec(None, {}, {"name": "t1", "provider": provider}), "10.199.9.0/24", 1500,
                            shares_kernel=provider == "docker")
    ingress = services.ServiceRequest("web", "img", publish=(services.Publish(8080, 80),))
    host = services.ServiceRequest("web", "img", publish=(services.Publish(8080, 80, "host"),))
    warning = services.ingress_warning(lab.plan, ingress)
    assert (warning is not None) == warned and services.ingress_warning(lab.plan, host) is None
    if warned:
        assert "service web's ingress port 8080 will be created but answer nothing" in warning
        assert "`--publish 8080:80:host`" in warning and "`--endpoint-mode dnsrr`" in warning
        assert "load balancer at 10.199.9.9, which forwards ports 8080 and 8081 to every node" in warning


def test_vm_labs_get_ingress_stacks_even_on_a_kernel_without_ipvs(monkeypatch):
    monkeypatch.setattr(stacks.entrypoint.ipvs, "available", lambda: False)
    lab = FakeLab()
    lab.plan = machine.plan(spec_load.load_spec(None, {}, {"name": "t1", "provider": "libvirt"}), "10.199.9.0/24", 1500)
    compose = yaml.safe_load(stacks.compose_text(lab, "web"))
    assert compose["services"]["web"]["ports"][0]["mode"] == "ingress"


def test_lab_up_says_once_that_there_is_no_mesh(monkeypatch):
    monkeypatch.setattr(entrypoint.ipvs, "available", lambda: False)
    plan = FakeLab().plan
    assert not entrypoint.has_routing_mesh(plan)
    line = entrypoint.no_mesh_line(plan)
    assert line.startswith("no routing mesh in this lab (this kernel has no IPVS)") and "10.199.9.9" in line
    vm = machine.plan(spec_load.load_spec(None, {}, {"name": "t1", "provider": "libvirt"}), "10.199.9.0/24", 1500)
    assert entrypoint.has_routing_mesh(vm)


def test_doctor_says_what_is_missing_in_plain_english(monkeypatch):
    monkeypatch.setattr(doctor.ipvs, "module_present", lambda module: False)
    found = {f.check: f for f in doctor.module_checks()}
    assert found["ipvs"].observed == ("kernel module ip_vs is missing, so container nodes have no ingress routing "
                                      "mesh and no service VIPs")
    assert "`--publish 8080:80:host`" in found["ipvs"].fix and "--endpoint-mode dnsrr" in found["ipvs"].fix
    assert found["ipvs"].level == "warn"
    assert found["vxlan"].observed == ("kernel module vxlan is missing, so overlay networks cannot carry traffic "
                                       "between nodes")
    assert found["vxlan"].level == "fail" and found["vxlan"].fix == "load it: `modprobe vxlan`"
    monkeypatch.setattr(doctor.ipvs, "module_present", lambda module: True)
    assert doctor.check_module("ipvs", "ip_vs", "x").observed == "kernel module ip_vs is available"


def test_a_slow_labs_healthchecks_stretch_with_its_pace_and_a_quick_labs_keep_the_images():
    from orchestrator.services import NANO, ServiceRequest, service_healthcheck

    plain = ServiceRequest(name="web", image="swarmdeck/web:1")
    assert service_healthcheck(plain, 1.0) is None  # the image's HEALTHCHECK, unchanged
    slow = service_healthcheck(plain, 6.0)
    assert slow["Timeout"] == 12 * NANO and slow["StartPeriod"] == 12 * NANO and not slow.get("Test")  # the image's test
    own = service_healthcheck(ServiceRequest(name="w", image="i", health_cmd="true", health_interval=1), 3.0)
    assert own["Test"] == ["CMD-SHELL", "true"] and own["Interval"] == NANO and own["Timeout"] == 6 * NANO
    assert service_healthcheck(ServiceRequest(name="w", image="i", health_cmd="true"), 1.0)["Timeout"] == 2 * NANO
    assert service_healthcheck(ServiceRequest(name="w", image="i", healthcheck=False), 6.0)["Test"] == ["NONE"]
