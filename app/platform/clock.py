"""The one clock the relay reads "now" and "today (UTC)" from.

Everything that depends on the calendar (which days can be exported, the quota's UTC day, Twilio's 7-day
retention, feed lag) asks this module, never ``time.time()`` or ``datetime.now()`` directly. That is what lets
the end-to-end tests move the relay's calendar in step with the Twilio sandbox's simulated one: when
``RELAY_CLOCK_OFFSET_FILE`` names a file, the number of seconds written in it is added to the real time (read again
as soon as the file is replaced; a missing or unreadable file counts as 0). It is the only test hook in production
code, it can only move the calendar (never skip a check), and the settings refuse it outside loopback
deployments (see ``app.platform.config``).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, date, datetime

OFFSET_FILE_VAR = "RELAY_CLOCK_OFFSET_FILE"


class _Offset:
    """The offset file's number, read again whenever the file is replaced (one stat per call: tests only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._value = 0.0

    def get(self) -> float:
        path = os.environ.get(OFFSET_FILE_VAR)
        if not path:
            return 0.0
        try:
            st = os.stat(path)
        except OSError:
            return 0.0
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen == self._seen:
            return self._value
        with self._lock:
            try:
                with open(path, encoding="ascii") as fh:
                    self._value = float(fh.read().strip() or 0)
            except (OSError, ValueError):
                self._value = 0.0
            self._seen = seen
        return self._value


_offset = _Offset()


def now() -> float:
    """Unix time as the relay sees it."""
    return time.time() + _offset.get()


def utc_now() -> datetime:
    return datetime.fromtimestamp(now(), UTC)


def system_now() -> float:
    """The host's Unix time, never moved by the offset: for timestamps another clock than the relay's stamps and
    checks (RQ's ``enqueued_at``, a webhook receiver checking a signature's age, S3's upload dates)."""
    return time.time()


def system_utc_now() -> datetime:
    return datetime.fromtimestamp(system_now(), UTC)


def utc_today() -> date:
    return utc_now().date()


def seconds_to_next_utc_day() -> float:
    """How long until the quota's UTC day changes."""
    return 86400 - now() % 86400
