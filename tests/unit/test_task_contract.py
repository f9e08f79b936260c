"""Jobs already queued in Redis name a task by its dotted path and carry its arguments as JSON: an upgrade keeps
every queued task runnable only if each name in the allow-list still resolves to a function taking the same
parameters. The table is the contract as of 0.6.0; a change to it needs an upgrade note (CHANGELOG.md) and a
task that still accepts the old arguments."""

from __future__ import annotations

import importlib
import inspect

from app.platform.queueing import RELAY_CALLBACKS, RELAY_TASKS

QUEUED_CONTRACT = {
    "workers.tasks.sync_job_task": ["job_sid"],
    "workers.tasks.copy_day_task": ["job_sid", "resource_type", "day", "size", "create_date"],
    "workers.tasks.on_copy_failure": ["job", "connection", "exc_type", "exc", "tb"],
    "workers.tasks.sweep_task": ["owner"],
    "workers.tasks.poll_task": [],
    "workers.tasks.recover_task": [],
    "workers.tasks.reconcile_task": ["owner"],
    "workers.tasks.verify_task": ["resource_type", "account_sid", "first", "last", "repair"],
    "workers.tasks.migrate_layout_task": ["template", "account_sid", "delete_old"],
    "workers.tasks.deliver_event_task": ["event_id", "body"],
    "workers.tasks.janitor_task": [],
}


def resolve(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_every_task_queued_before_the_upgrade_still_resolves_with_its_parameters() -> None:
    for dotted, params in QUEUED_CONTRACT.items():
        assert dotted in RELAY_TASKS | RELAY_CALLBACKS, f"{dotted} left the allow-list: queued jobs would be refused"
        parameters = list(inspect.signature(resolve(dotted)).parameters.values())
        assert [p.name for p in parameters[: len(params)]] == params, dotted
        added = [p.name for p in parameters[len(params) :] if p.default is inspect.Parameter.empty]
        assert added == [], f"{dotted}: a parameter added since needs a default (queued jobs do not pass it)"


def test_new_tasks_extend_the_contract_without_changing_it() -> None:
    for dotted in RELAY_TASKS | RELAY_CALLBACKS:
        assert callable(resolve(dotted)), dotted
