"""devstack.calendar: the sandbox's simulated "today" and the relay's (app.platform.clock, read in a fresh process
through
RELAY_CLOCK_OFFSET_FILE, as the relay's processes read it) move together."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from devstack.calendar import Calendar

ROOT = Path(__file__).resolve().parents[2]


def relay_today(cal: Calendar) -> date:
    env = {**os.environ, **cal.env(), "PYTHONPATH": str(ROOT)}
    code = "from app.platform import clock; print(clock.utc_today().isoformat())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=30)
    return date.fromisoformat(out.stdout.strip())


def test_the_sandbox_and_the_relay_agree_on_today_as_the_calendar_moves(sandbox, tmp_path) -> None:
    cal = Calendar(sandbox, tmp_path / "offset")
    cal.set_today(date(2026, 6, 10))
    assert cal.today == relay_today(cal) == date(2026, 6, 10)
    assert sandbox.clock()["now"].startswith("2026-06-10T01:00:00")  # far from midnight
    cal.advance_days(2)
    assert cal.today == relay_today(cal) == date(2026, 6, 12)
    cal.advance_seconds(23 * 3600)  # 01:00 + 23 h: the next UTC day for both
    assert cal.today == relay_today(cal) == date(2026, 6, 12) + timedelta(days=1)
