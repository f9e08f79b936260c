"""deploy/gunicorn.conf.py plus a log of every garbage collection in each worker (bench/webhook_intake.py --gc-probe).

    gunicorn --config bench/gunicorn_gc_probe.py app.wsgi:app      # BENCH_GC_LOG_DIR set

Why: a full (generation 2) collection stops every greenlet of a gevent worker, so its length lands on the
latency of every request in flight there. The shipped configuration is executed unchanged; ``post_worker_init``
(after the app is loaded in the worker) adds a ``gc.callbacks`` hook writing one JSON line per collection
(generation, milliseconds, objects tracked after a full one) to ``BENCH_GC_LOG_DIR/gc-<pid>.log``, then runs the
shipped ``post_worker_init`` (``gc.freeze()``: everything allocated at start-up moves to the permanent generation,
which full collections no longer traverse). ``BENCH_GC_FREEZE=0`` leaves that out, to measure it side by side.
"""

import gc
import json
import os
import time
from pathlib import Path
from typing import Any

_SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "gunicorn.conf.py"
exec(compile(_SHIPPED.read_text(), str(_SHIPPED), "exec"))  # noqa: S102 - the shipped config, unchanged


_shipped_post_worker_init = globals()["post_worker_init"]  # defined by the shipped config above


def post_worker_init(worker: Any) -> None:
    log = open(Path(os.environ["BENCH_GC_LOG_DIR"]) / f"gc-{os.getpid()}.log", "a", buffering=1)  # noqa: SIM115
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        entry = {"gen": info["generation"], "ms": round((time.perf_counter() - started[0]) * 1000, 3)}
        if info["generation"] == 2:
            entry["objects"] = len(gc.get_objects())
        log.write(json.dumps(entry) + "\n")

    gc.callbacks.append(callback)
    if os.environ.get("BENCH_GC_FREEZE") != "0":
        _shipped_post_worker_init(worker)
