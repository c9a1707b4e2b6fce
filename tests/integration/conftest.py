"""Integration tier: real labs on the real Docker engine, driven through the CLI (the fixtures
are tests/conftest.py's, the helpers tests/labs.py's). Every test here runs with the
session's own SWARMDECK_HOME."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_home(session_home):
    yield session_home
