"""Console sessions: the key that signs the cookie, and who is signed in (kept server-side, so it can end).

The cookie (``relay_console``, Flask's signed session) carries a CSRF token, flash messages and, once signed in, a
session id. Two things make it safe:

- **Its signing key is random, never derived from a token.** CONSOLE_SECRET_KEY when set (from the web's Secret);
  otherwise a key of 32 random bytes made by the first web process that needs one and kept in Redis
  (``ber:console:signing-key``, written with SET NX, so every gunicorn worker and replica reads the same one). A
  cookie, even the one the sign-in page hands every anonymous visitor, therefore says nothing about
  ADMIN_TOKEN or CONSOLE_TOKEN: no guess of them can be checked against it offline. This is the one secret the
  relay keeps in Redis, and only when none is configured. The trade-off: whoever reads that key can forge
  cookies, but a forged cookie signs nobody in (a session id must also exist server-side, below, and Redis holds
  only its SHA-256; whoever can *write* Redis can already queue work), and with the key *and* a signed-in
  cookie one could test guesses of the token against that cookie's ``token_mark``. Setting CONSOLE_SECRET_KEY
  keeps the key out of Redis, and is recommended. Changing it (or deleting the Redis key) invalidates every
  cookie: everyone is signed out.
- **A sign-in is a server-side session.** Signing in makes a random id (256 bits) for the cookie and stores its
  SHA-256 at ``ber:console:session:{hash}`` with the moment it ends: CONSOLE_SESSION_HOURS after sign-in, however
  busy the session (the end is read from the one clock, ``app.platform.clock``; the key's TTL matches, so nothing is
  left
  behind). Signing out deletes it: a copy of the cookie taken before is worthless from then on. The cookie also
  carries ``token_mark`` of the token it signed in with, so a new CONSOLE_TOKEN or ADMIN_TOKEN signs everyone out.

The key is read from Redis on every console request that needs it (one GET), not cached in the process: after a
lost Redis the next process makes a new key, and every process must switch to it at once or replicas would
disagree about every cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import redis

from app.platform import clock

SIGNING_KEY_REDIS = "ber:console:signing-key"
SESSION_PREFIX = "ber:console:session:"
SESSION_ID_BYTES = 32


def token_mark(key: str, token: str) -> str:
    """Which console token a session was signed in with, as only a holder of the signing key can compute it (an
    HMAC, kept in the signed cookie of signed-in sessions only): a new CONSOLE_TOKEN or ADMIN_TOKEN signs everyone
    out, and a cookie still tells a guesser nothing without the key."""
    return hmac.new(key.encode(), b"console token\x00" + token.encode(), hashlib.sha256).hexdigest()


def _key(session_id: str) -> str:
    return SESSION_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """The signing key kept in Redis (when none is configured) and the signed-in sessions."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def signing_key(self, configured: str | None) -> str:
        """CONSOLE_SECRET_KEY, or the key kept in Redis (made now, once for every process, if there is none)."""
        if configured:
            return configured
        for _ in range(3):  # a key deleted between our two calls (an operator rotating it) is simply made again
            key = self.r.get(SIGNING_KEY_REDIS)
            if key is not None:
                return key.decode() if isinstance(key, bytes) else str(key)
            made = secrets.token_hex(32)
            if self.r.set(SIGNING_KEY_REDIS, made, nx=True):  # the first writer wins; everyone else reads its key
                return made
        raise redis.RedisError("the console's signing key keeps vanishing from Redis")

    def start(self, hours: int) -> str:
        """A new signed-in session that ends ``hours`` from now; its id (for the cookie only)."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        seconds = hours * 3600
        self.r.set(_key(session_id), f"{clock.now() + seconds:.3f}", ex=seconds)
        return session_id

    def is_live(self, session_id: object) -> bool:
        """The id names a session that was started here, not ended, and not past its end."""
        if not isinstance(session_id, str) or not session_id:
            return False
        ends = self.r.get(_key(session_id))
        try:
            return ends is not None and float(ends) > clock.now()
        except ValueError:
            return False

    def end(self, session_id: object) -> None:
        """Sign-out: the id stops working everywhere, whoever holds a copy of the cookie."""
        if isinstance(session_id, str) and session_id:
            self.r.delete(_key(session_id))
