"""The docker provider reads other networks' subnets while other labs come and go."""

import docker.errors

from provision.providers.docker.provider import DockerProvider


class FakeNetwork:
    def __init__(self, name, subnet):
        self.name, self.id = name, f"id-{name}"
        self.attrs = {"IPAM": {"Config": [{"Subnet": subnet}]}}


class FakeNetworks:
    def __init__(self, listed, gone):
        self.listed, self.gone = listed, gone

    def list(self, **_):
        return self.listed

    def get(self, network_id):
        if network_id in self.gone:
            raise docker.errors.NotFound(f"network {network_id} not found")
        return next(n for n in self.listed if n.id == network_id)


class FakeClient:
    def __init__(self, networks):
        self.networks = networks


def test_a_network_removed_between_list_and_inspect_is_skipped():
    kept, removed = FakeNetwork("lab-a", "10.199.1.0/24"), FakeNetwork("lab-b", "10.199.2.0/24")
    provider = DockerProvider(FakeClient(FakeNetworks([kept, removed], gone={removed.id})))
    assert provider._taken_subnets(exclude=None) == {"lab-a": "10.199.1.0/24"}
