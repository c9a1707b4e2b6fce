"""Shared fixtures: every test gets its own SWARMDECK_HOME, so no state leaks between tests."""

import pytest


@pytest.fixture(autouse=True)
def swarmdeck_home(tmp_path, monkeypatch):
    home = tmp_path / "swarmdeck-home"
    monkeypatch.setenv("SWARMDECK_HOME", str(home))
    return home
