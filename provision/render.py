"""The one Jinja2 environment for everything under ``templates/``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

from provision.paths import TEMPLATES


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,  # a missing variable is an error, not ""
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(template: str, /, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context`` (which may hold a ``name``)."""
    return environment().get_template(template).render(**context)
