"""Two facts about the relay itself kept in Redis: the registry's marker (whether Redis still holds what the relay
recorded, app/jobs/recovery.py) and when the poller last completed a poll (/health, /metrics).

Key layout (prefix ``ber:``):

====================  ======  ================================================================================  ======
key                   type    content                                                                           expiry
====================  ======  ================================================================================  ======
ber:registry:marker   hash    the registry's id and birth, and when a signed webhook was first seen (a copy is  none
                              in the bucket: recovery)
ber:poller:last_run   string  unix time of the last completed poll                                              none
====================  ======  ================================================================================  ======
"""

from __future__ import annotations

from typing import Any

import redis

from app.platform import clock

PREFIX = "ber:"
REGISTRY_MARKER = f"{PREFIX}registry:marker"
LAST_POLL = f"{PREFIX}poller:last_run"


class MarkStore:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def marker(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.r.hgetall(REGISTRY_MARKER).items()}

    def put_marker(self, fields: dict[str, str]) -> None:
        mapping: dict[Any, Any] = dict(fields)
        self.r.hset(REGISTRY_MARKER, mapping=mapping)

    def mark_poll(self, at: float | None = None) -> None:
        self.r.set(LAST_POLL, str(clock.now() if at is None else at))

    def last_poll(self) -> float | None:
        value = self.r.get(LAST_POLL)
        return float(str(value)) if value else None

    def forget_last_poll(self) -> None:
        """As if the poller had never polled (tests wait for the next poll to set it again)."""
        self.r.delete(LAST_POLL)
