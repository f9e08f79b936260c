"""Run every benchmark, write the figures to bench/results.json and print a summary table.

    make bench                                  # = .venv/bin/python -m bench.run_all
    make bench ARGS=--with-5gib                 # also the 5 GiB day (bench/copy_big.py, a few minutes more)
    .venv/bin/python -m bench.run_all --quick   # smaller sizes; writes .bench/results-quick.json
    .venv/bin/python -m bench.run_all --only copy_throughput --profile
    .venv/bin/python -m bench.run_all --only planner --merge   # re-run one, keep the others' figures

Each benchmark starts its own servers on free 127.0.0.1 ports and stops every process it started, also
when it fails (a failure is recorded in the results and the others still run). The exit status is 0 when
every benchmark ran (missed targets are reported, not fatal; ``--strict`` makes them fatal too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import accounts, copy_big, copy_throughput, erasure_throughput, fanout, planner, webhook_intake
from bench.common import REPO_ROOT, WORK_ROOT, BenchResult, machine_info
from devstack.procs import stop_all

BENCHES: dict[str, Callable[..., BenchResult]] = {
    "webhook_intake": webhook_intake.run,
    "copy_throughput": copy_throughput.run,
    "fanout": fanout.run,
    "planner": planner.run,
    "accounts": accounts.run,  # issue 14: 200 accounts x 4 resource types
    "erasure_throughput": erasure_throughput.run,  # issue 22: scan, erase and redact rewrites beside a copy
}
OPTIONAL: dict[str, Callable[..., BenchResult]] = {"copy_5gib": copy_big.run}  # --with-5gib (or --only)
PROFILED = {"webhook_intake", "copy_throughput", "fanout"}  # the ones with a --profile pass


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if not line[3:].startswith("bench/")]
    return {"commit": git("rev-parse", "HEAD").strip(), "dirty_outside_bench": dirty}


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return f"{text} {unit}"


def summary(results: list[dict[str, Any]]) -> str:
    rows = [("benchmark", "figure", "value", "target", "result")]
    for res in results:
        if res["error"]:
            rows.append((res["name"], "ERROR", res["error"].splitlines()[0][:60], "", "error"))
        for f in res["figures"]:
            target = "" if f["target"] is None else f"{f['op']} {_fmt(f['target'], f['unit'])}"
            verdict = {True: "met", False: "MISSED", None: ""}[f["passed"]]
            rows.append((res["name"], f["name"], _fmt(f["value"], f["unit"]), target, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The figures of a results file as a Markdown table (for bench/README.md)."""
    lines = ["| benchmark | figure | value | target | result |", "| --- | --- | --- | --- | --- |"]
    for res in report["results"]:
        if res["error"]:
            lines.append(f"| {res['name']} | ERROR | {res['error'].splitlines()[0][:80]} | | error |")
        for f in res["figures"]:
            target = "" if f["target"] is None else f"{f['op']} {_fmt(f['target'], f['unit'])}"
            verdict = {True: "met", False: "**missed**", None: ""}[f["passed"]]
            lines.append(f"| {res['name']} | {f['name']} | {_fmt(f['value'], f['unit'])} | {target} | {verdict} |")
    loads = [
        f"{r['name']} {r['load_average']['before'][0]:.2f} -> {r['load_average']['after'][0]:.2f}"
        for r in report["results"]
        if "load_average" in r
    ]
    if loads:
        lines += ["", "Load average (1 min) before -> after each benchmark: " + "; ".join(loads) + "."]
    return "\n".join(lines)


def merged(previous: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """``previous`` with the entries of the benchmarks in ``run`` replaced (or added); the partial run's machine,
    load, commit and command are kept under ``merged_runs``, the rest of ``previous`` is left as it was."""
    names = [r["name"] for r in run["results"]]
    results = [r for r in previous.get("results", []) if r["name"] not in names] + run["results"]
    order = [*BENCHES, *OPTIONAL]
    results.sort(key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
    partial = {k: v for k, v in run.items() if k != "results"} | {"benchmarks": names}
    runs = [r for r in previous.get("merged_runs", []) if set(r["benchmarks"]) - set(names)]
    return previous | {"results": results, "merged_runs": [*runs, partial]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter phases")
    parser.add_argument("--only", nargs="+", choices=sorted({**BENCHES, **OPTIONAL}), help="run only these")
    parser.add_argument("--with-5gib", action="store_true", help="add the 5 GiB day (copy_5gib) to the run")
    parser.add_argument("--profile", action="store_true", help="add a py-spy pass where supported (not measured)")
    parser.add_argument("--output", type=Path, help="default: bench/results.json, or .bench/results-quick.json")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--markdown", type=Path, metavar="RESULTS", help="print RESULTS as Markdown, run nothing")
    parser.add_argument(
        "--merge", action="store_true", help="with --only: replace just those entries in the existing results file"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    output = args.output or (WORK_ROOT / "results-quick.json" if args.quick else REPO_ROOT / "bench" / "results.json")
    names = args.only or [*BENCHES, *(OPTIONAL if args.with_5gib else ())]
    started = time.monotonic()
    load_before = os.getloadavg()
    git_before = git_state()  # other people commit while a run goes on: say so if the code changed under it
    results: list[dict[str, Any]] = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.monotonic()
        load = os.getloadavg()
        kwargs: dict[str, Any] = {"quick": args.quick}
        if args.profile and name in PROFILED:
            kwargs["profile"] = True
        try:
            res = {**BENCHES, **OPTIONAL}[name](**kwargs)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            res = BenchResult(name, error=f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            stop_all()  # whatever a benchmark left running
        data = res.to_json()
        data["seconds"] = round(time.monotonic() - t0, 1)
        # The machine is shared: the load next to each benchmark's figures (1, 5, 15 min; before, after)
        data["load_average"] = {"before": [round(x, 2) for x in load], "after": [round(x, 2) for x in os.getloadavg()]}
        results.append(data)
    report = {
        "mode": "quick" if args.quick else "full",
        "machine": machine_info(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "git": git_before,
        "git_changed_during_run": git_state() != git_before,
        "seconds": round(time.monotonic() - started, 1),
        "command": " ".join([".venv/bin/python -m bench.run_all", *(argv if argv is not None else sys.argv[1:])]),
        "results": results,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    elapsed = report["seconds"]
    if args.merge and output.exists():
        report = merged(json.loads(output.read_text()), report)
    output.write_text(json.dumps(report, indent=2) + "\n")
    table = summary(results)
    print(f"\n{table}\n\nwritten to {output} ({elapsed:.0f} s)")
    errors = [r["name"] for r in results if r["error"]]
    missed = [f"{r['name']}: {f['name']}" for r in results for f in r["figures"] if f["passed"] is False]
    met = sum(f["passed"] is True for r in results for f in r["figures"])
    print(f"targets met: {met} of {met + len(missed)}" + (f"; errors in {errors}" if errors else ""))
    if errors:
        return 1
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
