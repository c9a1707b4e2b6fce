"""VM tier: labs of real VMs on libvirt + QEMU (software emulation where KVM cannot run a
guest). The session's SWARMDECK_HOME and the CLI helpers are the integration tier's."""

from __future__ import annotations

import pytest

from tests.integration.conftest import engine, session_home  # noqa: F401 - the same engine sweep and home


@pytest.fixture(scope="session")
def libvirt_conn():
    """An open libvirt connection, or a clear failure: CI installs and starts libvirtd."""
    try:
        import libvirt
    except ImportError:
        pytest.skip("VM tests need libvirt-python (`./bootstrap.sh test` installs it with libvirt on Debian)")
    try:
        conn = libvirt.open("qemu:///system")
    except libvirt.libvirtError as err:
        pytest.fail(f"libvirtd does not answer ({err}); ./bootstrap.sh test starts it")
    yield conn
    conn.close()


def libvirt_leftovers(conn, lab: str) -> list[str]:
    """The lab's domains, network and pool volumes that are still there (after lab.down: none)."""
    from provision.providers.libvirt import networks
    from provision.providers.libvirt.provider import POOL

    found = [f"domain {d.name()}" for d in conn.listAllDomains(0) if d.name().startswith(f"{lab}-")]
    found += [f"network {n.name()}" for n in conn.listAllNetworks(0) if n.name() == networks.network_name(lab)]
    pool = conn.storagePoolLookupByName(POOL)
    pool.refresh(0)
    return found + [f"volume {v.name()}" for v in pool.listAllVolumes(0) if v.name().startswith(f"{lab}-")]
