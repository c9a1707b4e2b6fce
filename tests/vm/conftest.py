"""VM tier: labs of real VMs on libvirt + QEMU (software emulation where KVM cannot run a
guest). The engine, the session's SWARMDECK_HOME and the CLI helpers are tests/conftest.py's
and tests/labs.py's, as for the integration tier."""

from __future__ import annotations

import pytest


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


@pytest.fixture(scope="session", autouse=True)
def _session_home(session_home):
    yield session_home
