"""The sandbox's simulated calendar and the relay's clock, moved together (e2e tests, ``make demo``).

The Twilio sandbox has a settable "now" (its control API); the relay reads "now" from ``app.platform.clock``, which adds
the seconds written in ``RELAY_CLOCK_OFFSET_FILE`` to the real time (loopback deployments only). After every
move of the sandbox clock, ``Calendar`` writes the sandbox's "now" minus the real time into that file, so both
agree on "today" (the quota's UTC day, the newest exportable day). The relay re-reads the file within 0.2 s.
"""

from __future__ import annotations

import os
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any


class Calendar:
    """Moves the sandbox clock and the relay's offset file together (``set_today``: 01:00 UTC, far from midnight)."""

    def __init__(self, sandbox: Any, offset_file: Path) -> None:
        self.sandbox = sandbox  # a devstack.sandbox_process.SandboxProcess
        self.offset_file = Path(offset_file)

    def env(self) -> dict[str, str]:
        """What the relay's processes need to follow this calendar."""
        return {"RELAY_CLOCK_OFFSET_FILE": str(self.offset_file)}

    def set_today(self, day: date) -> None:
        self._follow(self.sandbox.set_now(f"{day.isoformat()}T01:00:00Z"))

    def advance_days(self, days: int = 1) -> None:
        """Let ``days`` whole days pass: the sandbox runs every midnight crossed (daily exports, quota reset)."""
        self._follow(self.sandbox.advance_days(days))

    def advance_seconds(self, seconds: float) -> None:
        self.sandbox.advance_clock(seconds)
        self._follow(self.sandbox.clock())

    def _follow(self, clock: dict[str, Any]) -> None:
        now = datetime.fromisoformat(clock["now"].replace("Z", "+00:00")).timestamp()
        staged = self.offset_file.with_name(self.offset_file.name + ".new")
        staged.write_text(f"{now - time.time():.3f}")
        os.replace(staged, self.offset_file)  # whole: the relay's processes read it again on their next clock call

    @property
    def today(self) -> date:
        return date.fromisoformat(self.sandbox.clock()["today"])
