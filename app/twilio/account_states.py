"""What may be shown about each account served (app/twilio/accounts.py): its label, family, state and last error.
Credentials stay in process memory, never here.

Key layout (prefix ``ber:``):

==================  ======  ================================================================================  ======
key                 type    content                                                                           expiry
==================  ======  ================================================================================  ======
ber:account:{sid}   hash    an account's label, family, state (ok, credentials refused, suspended), last       none
                            error and ``checked_at``
ber:accounts        set     SIDs with a ber:account hash                                                      none
==================  ======  ================================================================================  ======
"""

from __future__ import annotations

from typing import Any

import redis

from app.platform import clock

PREFIX = "ber:"
ACCOUNTS_KEY = f"{PREFIX}accounts"


class AccountStateStore:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def put(self, sid: str, **fields: str) -> None:
        """Merge ``fields`` into the account's state (stamped ``checked_at`` now)."""
        mapping: dict[Any, Any] = {k: str(v) for k, v in fields.items()} | {"checked_at": str(clock.now())}
        with self.r.pipeline() as p:
            p.hset(f"{PREFIX}account:{sid}", mapping=mapping)
            p.sadd(ACCOUNTS_KEY, sid)
            p.execute()

    def all(self) -> dict[str, dict[str, str]]:
        """sid -> state of every account ever recorded, by SID."""
        sids = sorted(str(s) for s in self.r.smembers(ACCOUNTS_KEY))
        with self.r.pipeline() as p:
            for sid in sids:
                p.hgetall(f"{PREFIX}account:{sid}")
            found = p.execute()
        return {sid: {str(k): str(v) for k, v in data.items()} for sid, data in zip(sids, found, strict=True)}
