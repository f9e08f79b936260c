"""Scenario and fault plans: the JSON the control API accepts, validated into frozen objects.

A scenario is snapshotted into each job when it is created, so changing it later never rewrites
history; the fault plan is live (its counters count down as requests consume them). ``today`` in a
scenario payload is not kept here: the Store moves its clock to that day (see sandbox.clock).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

from sandbox import RESOURCE_TYPES

OUTCOMES = ("completed", "empty_file", "empty_404", "error_then_completed", "failed")
PRODUCES_FILE = {"completed", "empty_file", "error_then_completed"}
FINAL_STATUS = {
    "completed": "Completed",
    "error_then_completed": "Completed",
    "empty_file": "CompletedEmptyRecords",
    "empty_404": "CompletedEmptyRecords",
    "failed": "Failed",
}


class ScenarioError(ValueError):
    """A control-API payload that cannot be applied (answered with 400)."""


def _num(d: Mapping[str, Any], key: str, default: float, *, minimum: float = 0.0) -> float:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ScenarioError(f"{key} must be a number >= {minimum}")
    return float(value)


def _int(d: Mapping[str, Any], key: str, default: int, *, minimum: int = 0) -> int:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScenarioError(f"{key} must be an integer >= {minimum}")
    return value


@dataclass(frozen=True)
class DayPlan:
    """What a job will produce for one day."""

    outcome: str = "completed"
    size: int = 4096


@dataclass(frozen=True)
class WebhookConfig:
    """How the completion webhook is delivered (see sandbox.webhooks)."""

    copies: int = 1
    drop: bool = False
    sign: bool = True
    body: str = "form"
    extra_params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WebhookConfig:
        unknown = set(d) - {"copies", "drop", "sign", "body", "extra_params"}
        if unknown:
            raise ScenarioError(f"unknown webhook keys: {sorted(unknown)}")
        body = d.get("body", "form")
        if body not in ("form", "json"):
            raise ScenarioError("webhook.body must be 'form' or 'json'")
        extra = d.get("extra_params", {}) or {}
        if not isinstance(extra, dict):
            raise ScenarioError("webhook.extra_params must be an object")
        return cls(
            copies=_int(d, "copies", 1),
            drop=bool(d.get("drop", False)),
            sign=bool(d.get("sign", True)),
            body=body,
            extra_params=tuple(sorted((str(k), str(v)) for k, v in extra.items())),
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "extra_params": dict(self.extra_params)}


@dataclass(frozen=True)
class DailyDayRule:
    """Per-day overrides of a daily-export webhook (None: the general setting)."""

    copies: int | None = None
    drop: bool | None = None
    delay_seconds: float | None = None


@dataclass(frozen=True)
class DailyWebhookConfig:
    """How daily auto-export webhooks are delivered: a WebhookConfig plus delay and per-day faults.

    ``delay_seconds`` (sandbox time after the file is generated), ``drop_days`` (days whose webhook is
    never sent), ``days`` (per-day ``copies``/``drop``/``delay_seconds``). Days are the exported day.
    """

    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    delay_seconds: float = 0.0
    drop_days: frozenset[str] = frozenset()
    days: tuple[tuple[str, DailyDayRule], ...] = ()

    KEYS = frozenset({"copies", "drop", "sign", "body", "extra_params", "delay_seconds", "drop_days", "days"})

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DailyWebhookConfig:
        if not isinstance(d, Mapping) or set(d) - cls.KEYS:
            raise ScenarioError(f"daily_webhook takes keys {sorted(cls.KEYS)}")
        drop_days = d.get("drop_days", []) or []
        if not isinstance(drop_days, list):
            raise ScenarioError("daily_webhook.drop_days must be a list of yyyy-mm-dd")
        rules_in = d.get("days", {}) or {}
        if not isinstance(rules_in, dict):
            raise ScenarioError("daily_webhook.days must be an object keyed yyyy-mm-dd")
        rules: list[tuple[str, DailyDayRule]] = []
        for day, rule in rules_in.items():
            _check_day(day, "daily_webhook.days")
            if not isinstance(rule, dict) or set(rule) - {"copies", "drop", "delay_seconds"}:
                raise ScenarioError(f"daily_webhook.days[{day!r}] takes copies, drop, delay_seconds")
            rules.append(
                (
                    day,
                    DailyDayRule(
                        copies=_int(rule, "copies", 1) if "copies" in rule else None,
                        drop=bool(rule["drop"]) if "drop" in rule else None,
                        delay_seconds=_num(rule, "delay_seconds", 0.0) if "delay_seconds" in rule else None,
                    ),
                )
            )
        general = {k: v for k, v in d.items() if k in ("copies", "drop", "sign", "body", "extra_params")}
        return cls(
            webhook=WebhookConfig.from_json(general),
            delay_seconds=_num(d, "delay_seconds", 0.0),
            drop_days=frozenset(_check_day(str(x), "daily_webhook.drop_days") for x in drop_days),
            days=tuple(rules),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **self.webhook.to_json(),
            "delay_seconds": self.delay_seconds,
            "drop_days": sorted(self.drop_days),
            "days": {k: {n: v for n, v in asdict(r).items() if v is not None} for k, r in self.days},
        }

    def for_day(self, day: date) -> tuple[WebhookConfig, float]:
        """(delivery config, delay in seconds) for the daily webhook of exported ``day``."""
        iso = day.isoformat()
        rule = dict(self.days).get(iso, DailyDayRule())
        cfg = self.webhook
        if rule.copies is not None:
            cfg = replace(cfg, copies=rule.copies)
        if rule.drop is not None:
            cfg = replace(cfg, drop=rule.drop)
        if iso in self.drop_days:
            cfg = replace(cfg, drop=True)
        return cfg, self.delay_seconds if rule.delay_seconds is None else rule.delay_seconds


def _check_day(value: str, what: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except (TypeError, ValueError):
        raise ScenarioError(f"{what}: {value!r} is not yyyy-mm-dd") from None


@dataclass(frozen=True)
class Scenario:
    """Knobs for how jobs behave. Snapshotted into each job when it is created."""

    step_seconds: float = 0.2
    days_per_step: int = 10
    error_steps: int = 2
    default_day_size: int = 4096
    default_outcome: str = "completed"
    link_ttl_seconds: float = 240.0
    daily_quota_days: int = 366
    seed: int = 0
    today: date | None = None  # a request to move the clock, applied (and cleared) by the Store
    days: tuple[tuple[str, DayPlan], ...] = ()
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    editions: bool = True
    daily_delay_seconds: float = 0.0
    daily_webhook: DailyWebhookConfig = field(default_factory=DailyWebhookConfig)

    KEYS = frozenset(
        {
            "step_seconds",
            "days_per_step",
            "error_steps",
            "default_day_size",
            "default_outcome",
            "link_ttl_seconds",
            "daily_quota_days",
            "seed",
            "today",
            "days",
            "webhook",
            "editions",
            "daily_delay_seconds",
            "daily_webhook",
        }
    )

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Scenario:
        if not isinstance(d, Mapping):
            raise ScenarioError("scenario must be a JSON object")
        unknown = set(d) - cls.KEYS
        if unknown:
            raise ScenarioError(f"unknown scenario keys: {sorted(unknown)}")
        default_size = _int(d, "default_day_size", 4096)
        default_outcome = d.get("default_outcome", "completed")
        if default_outcome not in OUTCOMES:
            raise ScenarioError(f"default_outcome must be one of {OUTCOMES}")
        today = d.get("today")
        try:
            today_d = date.fromisoformat(today) if today else None
        except (TypeError, ValueError):
            raise ScenarioError("today must be yyyy-mm-dd") from None
        days_in = d.get("days", {}) or {}
        if not isinstance(days_in, dict):
            raise ScenarioError("days must be an object keyed 'ResourceType/yyyy-mm-dd' or 'yyyy-mm-dd'")
        days: list[tuple[str, DayPlan]] = []
        for key, spec in days_in.items():
            rt, _, day = key.rpartition("/")
            if rt and rt not in RESOURCE_TYPES:
                raise ScenarioError(f"days key {key!r}: unknown resource type")
            try:
                date.fromisoformat(day)
            except ValueError:
                raise ScenarioError(f"days key {key!r}: day must be yyyy-mm-dd") from None
            if isinstance(spec, str):
                spec = {"outcome": spec}
            if not isinstance(spec, dict) or set(spec) - {"outcome", "size"}:
                raise ScenarioError(f"days[{key!r}] must be an outcome string or {{outcome, size}}")
            outcome = spec.get("outcome", default_outcome)
            if outcome not in OUTCOMES:
                raise ScenarioError(f"days[{key!r}].outcome must be one of {OUTCOMES}")
            days.append((key, DayPlan(outcome, _int(spec, "size", default_size))))
        webhook = d.get("webhook", {}) or {}
        if not isinstance(webhook, dict):
            raise ScenarioError("webhook must be an object")
        editions = d.get("editions", True)
        if not isinstance(editions, bool):
            raise ScenarioError("editions must be true or false")
        return cls(
            step_seconds=_num(d, "step_seconds", 0.2),
            days_per_step=_int(d, "days_per_step", 10, minimum=1),
            error_steps=_int(d, "error_steps", 2, minimum=1),
            default_day_size=default_size,
            default_outcome=default_outcome,
            link_ttl_seconds=_num(d, "link_ttl_seconds", 240.0),
            daily_quota_days=_int(d, "daily_quota_days", 366),
            seed=_int(d, "seed", 0),
            today=today_d,
            days=tuple(days),
            webhook=WebhookConfig.from_json(webhook),
            editions=editions,
            daily_delay_seconds=_num(d, "daily_delay_seconds", 0.0),
            daily_webhook=DailyWebhookConfig.from_json(d.get("daily_webhook", {}) or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "step_seconds": self.step_seconds,
            "days_per_step": self.days_per_step,
            "error_steps": self.error_steps,
            "default_day_size": self.default_day_size,
            "default_outcome": self.default_outcome,
            "link_ttl_seconds": self.link_ttl_seconds,
            "daily_quota_days": self.daily_quota_days,
            "seed": self.seed,
            "today": self.today.isoformat() if self.today else None,
            "days": {k: asdict(v) for k, v in self.days},
            "webhook": self.webhook.to_json(),
            "editions": self.editions,
            "daily_delay_seconds": self.daily_delay_seconds,
            "daily_webhook": self.daily_webhook.to_json(),
        }

    def plan_for(self, resource_type: str, day: date) -> DayPlan:
        """Most specific rule wins: 'Type/day', then 'day', then the defaults."""
        table = dict(self.days)
        iso = day.isoformat()
        return (
            table.get(f"{resource_type}/{iso}")
            or table.get(iso)
            or DayPlan(self.default_outcome, self.default_day_size)
        )


@dataclass
class Faults:
    """Injected failures: deterministic counters (the next N requests) plus a seeded random rate."""

    api_429: int = 0
    api_500: int = 0
    api_403: int = 0  # refused (e.g. an API key without the permission): not retryable, unlike 429/500
    api_slow_ms: int = 0
    retry_after: int = 1
    api_only: frozenset[str] = frozenset()
    api_rate: float = 0.0
    api_kinds: tuple[str, ...] = ("429", "500")
    files_cut: int = 0
    files_expired: int = 0
    files_500: int = 0
    files_slow_ms: int = 0
    files_chunk_delay_ms: int = 0
    files_cut_at: int | None = None
    files_rate: float = 0.0
    files_kinds: tuple[str, ...] = ("cut", "500")
    seed: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    API_KEYS = frozenset({"429", "500", "403", "slow_ms", "retry_after", "only", "rate", "kinds"})
    FILES_KEYS = frozenset({"cut", "expired", "500", "slow_ms", "chunk_delay_ms", "cut_at", "rate", "kinds"})

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Faults:
        if not isinstance(d, Mapping):
            raise ScenarioError("faults must be a JSON object")
        unknown = set(d) - {"api", "files", "rate", "seed"}
        api = d.get("api", {}) or {}
        files = d.get("files", {}) or {}
        if unknown or not isinstance(api, dict) or not isinstance(files, dict):
            raise ScenarioError(f"faults takes objects 'api', 'files' and numbers 'rate', 'seed' (got {sorted(d)})")
        if set(api) - cls.API_KEYS or set(files) - cls.FILES_KEYS:
            raise ScenarioError(
                f"unknown fault keys: api {sorted(set(api) - cls.API_KEYS)}, "
                f"files {sorted(set(files) - cls.FILES_KEYS)}"
            )
        rate = _num(d, "rate", 0.0)
        api_kinds = tuple(str(k) for k in api.get("kinds", ("429", "500")))
        files_kinds = tuple(str(k) for k in files.get("kinds", ("cut", "500")))
        if not api_kinds or set(api_kinds) - {"429", "500"}:
            raise ScenarioError("api.kinds must be a non-empty subset of ['429', '500']")
        if not files_kinds or set(files_kinds) - {"cut", "500", "expired"}:
            raise ScenarioError("files.kinds must be a non-empty subset of ['cut', '500', 'expired']")
        only = api.get("only", []) or []
        if not isinstance(only, list):
            raise ScenarioError("api.only must be a list of operation ids")
        cut_at = files.get("cut_at")
        if cut_at is not None and (isinstance(cut_at, bool) or not isinstance(cut_at, int) or cut_at < 0):
            raise ScenarioError("files.cut_at must be a byte count >= 0")
        seed = _int(d, "seed", 0)
        return cls(
            api_429=_int(api, "429", 0),
            api_500=_int(api, "500", 0),
            api_403=_int(api, "403", 0),
            api_slow_ms=_int(api, "slow_ms", 0),
            retry_after=_int(api, "retry_after", 1),
            api_only=frozenset(str(o) for o in only),
            api_rate=_num(api, "rate", rate),
            api_kinds=api_kinds,
            files_cut=_int(files, "cut", 0),
            files_expired=_int(files, "expired", 0),
            files_500=_int(files, "500", 0),
            files_slow_ms=_int(files, "slow_ms", 0),
            files_chunk_delay_ms=_int(files, "chunk_delay_ms", 0),
            files_cut_at=cut_at,
            files_rate=_num(files, "rate", rate),
            files_kinds=files_kinds,
            seed=seed,
            rng=random.Random(seed),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "api": {
                "429": self.api_429,
                "500": self.api_500,
                "403": self.api_403,
                "slow_ms": self.api_slow_ms,
                "retry_after": self.retry_after,
                "only": sorted(self.api_only),
                "rate": self.api_rate,
                "kinds": list(self.api_kinds),
            },
            "files": {
                "cut": self.files_cut,
                "expired": self.files_expired,
                "500": self.files_500,
                "slow_ms": self.files_slow_ms,
                "chunk_delay_ms": self.files_chunk_delay_ms,
                "cut_at": self.files_cut_at,
                "rate": self.files_rate,
                "kinds": list(self.files_kinds),
            },
            "seed": self.seed,
        }
