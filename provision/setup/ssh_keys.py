"""The lab's public key is authorized for root on every node."""

from __future__ import annotations

import shlex

from provision.remote.host import Host, check

AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"


def ensure_authorized_key(host: Host, public_line: str) -> bool:
    present = host.run(f"grep -qxF {shlex.quote(public_line)} {AUTHORIZED_KEYS}")
    if present.ok:
        return False
    check(host, f"mkdir -p -m 700 /root/.ssh && echo {shlex.quote(public_line)} >> {AUTHORIZED_KEYS} "
                f"&& chmod 600 {AUTHORIZED_KEYS}")
    return True
