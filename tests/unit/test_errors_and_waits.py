"""The error hierarchy (secrets redacted, commands' last lines kept) and waits that name what they awaited."""

import pytest

from provision import wait
from provision.errors import CommandFailed, LabError, SwarmError, WaitTimeout, redact

# A made-up token, assembled so that secret scanners do not take it for a real one.
TOKEN = "SWM" + "TKN-1-" + "3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"


def test_tokens_and_keys_are_redacted_from_every_error():
    assert TOKEN not in redact(f"join {TOKEN} failed")
    err = SwarmError(f"join with {TOKEN} failed", hint=f"retry with {TOKEN}")
    assert "SWMTKN-<redacted>" in err.user_message() and TOKEN not in err.user_message()
    failed = CommandFailed("manager1", f"docker swarm join --token {TOKEN}", 1, f"bad {TOKEN}")
    assert TOKEN not in str(failed)
    assert "SWMKEY-<redacted>" in redact("SWM" + "KEY-1-abcdef")


def test_command_failed_keeps_the_last_lines():
    err = CommandFailed("n1", "false", 3, "\n".join(f"line{i}" for i in range(30)))
    assert "exited 3" in str(err) and "line29" in str(err) and "line5\n" not in str(err)


def test_wait_until_names_what_it_awaited_and_the_last_observation():
    now = [0.0]
    attempts = []

    def check():
        attempts.append(1)
        raise wait.NotYet(f"worker1=down (try {len(attempts)})")

    with pytest.raises(WaitTimeout) as caught:
        wait.wait_until(check, timeout=3, describe="nodes to be ready", hint="look at lab.status",
                        clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s), interval=1)
    message = caught.value.user_message()
    assert "waiting for nodes to be ready" in message and "worker1=down (try 4)" in message
    assert "hint: look at lab.status" in message


def test_wait_until_returns_the_first_truthy_value_and_passes_lab_errors():
    values = iter([None, 0, "yes"])
    assert wait.wait_until(lambda: next(values), timeout=5, describe="x", sleep=lambda s: None) == "yes"
    with pytest.raises(LabError, match="boom"):
        wait.wait_until(lambda: (_ for _ in ()).throw(LabError("boom")), timeout=5, describe="x")
