import pytest
import yaml

from orchestrator import services, stacks, swarm
from provision import config, machine
from provision.errors import LabError


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
        spec = config.load_spec(None, {}, {"name": "t1", "registry": {"enabled": registry}})
        self.plan = machine.plan(spec, "10.199.9.0/24", mtu)


@pytest.mark.parametrize("with_ipvs, mode", [(True, "ingress"), (False, "host")])
def test_shipped_stacks_render_for_the_kernel(monkeypatch, with_ipvs, mode):
    monkeypatch.setattr(stacks.ipvs, "available", lambda: with_ipvs)
    for stack in stacks.shipped():
        compose = yaml.safe_load(stacks.compose_text(FakeLab(mtu=1400), stack))
        for service in compose["services"].values():
            assert service["image"].startswith("10.199.9.10:5000/swarmdeck/web:")
            for port in service.get("ports", []):
                assert port["mode"] == mode
            if mode == "host" and service.get("ports"):
                assert service["deploy"]["mode"] == "global"  # one task per node: no port clash
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
