"""Records of finished work read back: a config written before a field existed is that field's default.

A resumable step (an encoder pretraining, a (variant, seed) run, a quickstart folder, a learning
curve) stores the config it ran with and refuses to mix in work done with another. When a field is
added to a config later (with a default that keeps the old behaviour), a record written before it
lacks the key; `as_written` fills it from the defaults, so the record still names the same work,
while a record whose fields really differ stays different.
"""

from __future__ import annotations

import json
from typing import Any


def jsonable(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples as lists)."""
    return json.loads(json.dumps(value))


def as_written(held: Any, defaults: Any) -> Any:
    """`held` with the keys it lacks taken from `defaults`, at every depth of nested dicts."""
    if not (isinstance(held, dict) and isinstance(defaults, dict)):
        return held
    return {**jsonable(defaults), **{k: as_written(v, defaults.get(k)) for k, v in held.items()}}
