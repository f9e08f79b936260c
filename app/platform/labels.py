"""Which names may stand for an account: the rule that keeps a subaccount's friendly name from taking over another
account (issue 20).

``account=`` (API, CLI, console) names an account by SID or label. A discovered subaccount's label comes from its
Twilio friendly name, which anyone holding that subaccount's credentials can change to anything, another account's
SID included. So:

1. A SID always resolves to itself (``AC`` + 32 hex digits, either case): it is never compared with labels.
2. A friendly name is first sanitised (:func:`display_text`): Unicode NFKC (full-width letters become ASCII),
   control and format characters dropped (zero-width spaces, bidi marks), whitespace runs made one space, at most
   40 characters.
3. It may be shown or used only if it is plain printable ASCII and does not look like a SID
   (:func:`looks_like_sid`: its letters and digits, case folded, contain ``ac`` + 32 hex digits, whatever
   spaces, dashes or invisible characters separate them). Other scripts can imitate a SID (Cyrillic has letters drawn
   like A and C), so a non-ASCII name is never a label.
4. It is a label only if no other account has the same :func:`label_key` (its ASCII letters and digits, case
   folded: "team-a", "Team A" and "team_a" are one key). A TWILIO_ACCOUNTS_FILE label (checked at start-up by
   the same rule) keeps its label; a discovered name that collides with it, or with another discovered name, is
   no account's label.

An account without a label is reached by its SID only. Pure functions: ``app.platform.config`` and
``app.twilio.accounts`` use
them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

LABEL_MAX = 40
_SID_INSIDE_RE = re.compile(r"ac[0-9a-f]{32}")
_SPACES_RE = re.compile(r"\s+")


def display_text(raw: Any) -> str:
    """A friendly name sanitised (rule 2): NFKC, no control or format characters, single spaces, ≤ 40 chars."""
    text = unicodedata.normalize("NFKC", str(raw or ""))
    text = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch)[0] != "C")
    return _SPACES_RE.sub(" ", text).strip()[:LABEL_MAX].strip()


def _skeleton(text: str) -> str:
    """Letters and digits only, case folded: what a reader compares when punctuation and spacing are ignored."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def looks_like_sid(text: str) -> bool:
    """True when ``text`` reads as an account SID once spacing, punctuation and case are ignored (rule 3)."""
    return bool(_SID_INSIDE_RE.search(_skeleton(text)))


def label_key(label: str) -> str:
    """What two labels must not share (rule 4)."""
    return _skeleton(label)


def shown_name(raw: Any) -> str:
    """The sanitised friendly name if it may be shown and be a label (rules 2-3, uniqueness aside); else ""."""
    text = display_text(raw)
    if not text or not text.isascii() or not text.isprintable() or looks_like_sid(text) or not label_key(text):
        return ""
    return text
