"""The sandbox's one clock: real time plus offsets, giving "now" and "today" (UTC) and the time jobs run on.

Two readings of one clock:

- ``wall()``: naive UTC datetime = real UTC time + ``wall_offset``. "Today" is its date. It names days:
  EndDay validation (at least 2 days before today), the quota day, ``create_date``, daily exports.
- ``mono()``: ``time.monotonic()`` + ``mono_offset``. Job progress, link expiry and timed events use it.

Moving forward (``advance``, or setting a later ``now``/``today``) adds the same amount to both, so jobs
progress and links age as if that time had passed. Moving back (setting an earlier ``now``/``today``)
only relabels the calendar: ``wall_offset`` goes back, ``mono`` never does (a job cannot un-finish).
Setting ``today`` puts the clock at 00:00:00.000 UTC of that day, so a test that then advances by whole
days crosses exactly that many midnights whatever the real time of day. Not thread-safe on its own: the
Store calls it under its lock.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

DAY_SECONDS = 86_400


def real_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class SandboxClock:
    """Real time plus a wall offset (calendar) and a mono offset (elapsed time, forward only)."""

    def __init__(self) -> None:
        self.wall_offset = 0.0
        self.mono_offset = 0.0

    def mono(self) -> float:
        return time.monotonic() + self.mono_offset

    def wall(self) -> datetime:
        return real_utc() + timedelta(seconds=self.wall_offset)

    def today(self) -> date:
        return self.wall().date()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` (>= 0) pass at once."""
        seconds = max(0.0, seconds)
        self.wall_offset += seconds
        self.mono_offset += seconds

    def set_wall(self, target: datetime) -> None:
        """Make "now" ``target`` (naive UTC): forward is elapsed time, backward only relabels the calendar."""
        delta = (target - self.wall()).total_seconds()
        if delta > 0:
            self.advance(delta)
        else:
            self.wall_offset += delta

    def set_today(self, day: date) -> None:
        """Make "now" 00:00:00.000 UTC of ``day``."""
        self.set_wall(datetime.combine(day, datetime.min.time()))

    def reset_wall(self) -> None:
        """Back to real UTC time (elapsed mono time is kept: it never runs backwards)."""
        self.wall_offset = 0.0

    def mono_at(self, wall: datetime) -> float:
        """The mono reading at which the wall clock shows (or showed) ``wall``."""
        return self.mono() - (self.wall() - wall).total_seconds()

    def wall_at(self, mono: float) -> datetime:
        return self.wall() + timedelta(seconds=mono - self.mono())

    def to_json(self) -> dict[str, Any]:
        now = self.wall()
        return {
            "now": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "today": now.date().isoformat(),
            "offset_seconds": self.mono_offset,
            "wall_offset_seconds": self.wall_offset,
        }


def midnights(after: date, upto: date) -> list[date]:
    """The days whose 00:00 UTC lies in (after's midnight, upto's midnight]: the days the clock entered."""
    n = (upto - after).days
    return [after + timedelta(days=k) for k in range(1, n + 1)]
