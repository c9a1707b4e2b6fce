import pytest

from provision.errors import PartialFailure
from provision.parallel import fan_out


def test_every_item_is_attempted_and_every_failure_named():
    done = []

    def action(node):
        done.append(node)
        if node in ("worker1", "worker3"):
            raise RuntimeError(f"{node} broke")
        return node.upper()

    with pytest.raises(PartialFailure) as caught:
        fan_out(["worker1", "worker2", "worker3"], action, name=str, what="joining workers")
    assert sorted(done) == ["worker1", "worker2", "worker3"]
    assert set(caught.value.failures) == {"worker1", "worker3"}
    assert "joining workers failed on 2 host(s)" in str(caught.value) and "worker3 broke" in str(caught.value)
    assert fan_out(["a", "b"], str.upper, name=str, what="x") == {"a": "A", "b": "B"}


def test_an_interrupt_is_not_a_node_failure():
    def interrupted(_node):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fan_out(["n1"], interrupted, name=str, what="x")
