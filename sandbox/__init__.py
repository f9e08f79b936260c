"""Local stand-in for Twilio BulkExports v1 (placeholder docstring, rewritten below)."""

from __future__ import annotations

RESOURCE_TYPES: tuple[str, ...] = ("Messages", "Calls", "Conferences", "Participants")
DEFAULT_ACCOUNT_SID = "AC" + "5a" * 16
DEFAULT_AUTH_TOKEN = "7e" * 16
