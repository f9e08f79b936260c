"""Second half of `make image-check`: run every role of the built image from its root filesystem and check them.

deploy/image-check.sh builds the image with buildah (no engine), mounts its root filesystem and runs this with
the mount point and the image's config (``podman image inspect --format '{{json .Config}}'``). Every process is
started as an engine would start it: the image's ENTRYPOINT, USER, WORKDIR and ENV (plus HOME from the image's
/etc/passwd, as Docker sets it, and the relay's environment contract), through ``image-check.sh rootfs-exec``
(a private mount namespace with the image's root read-only, tmpfs /tmp, chroot). The network namespace is the
host's, so Redis, S3 (devstack's, over TLS: its CA is copied into the process's /tmp) and the Twilio sandbox of
devstack are reached on 127.0.0.1.

Checks (all are run; every failure is listed and the exit status is 1):
- ``flask --app app relay --help`` exits 0 and prints its usage; the image's user is 10001:10001, /app is
  read-only to it;
- web answers /livez and /readyz with 200;
- worker: a one-day job submitted through the web's API ends ``done`` and the day in S3 has the sandbox's bytes;
- poller: at least one poll ran (``relay_polls_total{outcome="ok"}`` at the web's /metrics);
- the image's ``sandbox`` role starts and answers its health call;
- every process (children included) runs as uid/gid 10001, chrooted into the image, with /app mounted read-only;
- no line at ERROR or above (nor a traceback) in any process's log, from start to stop.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack.procs import ManagedProcess, descendants, free_port, stop_all, wait_until
from devstack.stack import LocalStack, local_stack

EXPECTED_USER = "10001:10001"
BUCKET = "relay-image-check"
RESOURCE_TYPE = "Messages"
FILES_IN_ROOTFS = "/tmp/check"  # noqa: S108 - the process's own tmpfs /tmp inside the image (rootfs-exec)
_ERROR_WORD = re.compile(r"\b(ERROR|CRITICAL|FATAL)\b|^Traceback ")
_ERROR_LEVELS = {"ERROR", "CRITICAL", "FATAL"}


@dataclass(frozen=True)
class Image:
    """The mounted image: how to start a process from it as an engine would."""

    rootfs: Path
    config: dict
    rootfs_exec: Path
    files: Path  # host directory whose files each process sees under FILES_IN_ROOTFS
    logs: Path  # one log file per process

    def home(self) -> str:
        """HOME as Docker sets it: the home of the image's USER in the image's /etc/passwd, else /."""
        uid = self.config["User"].split(":")[0]
        for line in (self.rootfs / "etc" / "passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 5 and uid in (fields[0], fields[2]):
                return fields[5]
        return "/"

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        image_env = dict(item.split("=", 1) for item in self.config.get("Env") or [])
        return {**image_env, "HOME": self.home(), **extra}

    def argv(self, *args: str) -> list[str]:
        user, workdir = self.config["User"], self.config.get("WorkingDir") or "/"
        wrapper = [str(self.rootfs_exec), "rootfs-exec", str(self.rootfs), user, workdir, str(self.files), "--"]
        return [*wrapper, *self.config["Entrypoint"], *args]

    def process(self, name: str, args: list[str], env: dict[str, str]) -> ManagedProcess:
        proc = ManagedProcess(name, self.argv(*args), self.logs)
        proc.env = self.env(env)  # exactly the container's environment, none of this process's
        return proc.start()


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)

    def check(self, what: str, fn: Callable[[], object]) -> None:
        started = time.monotonic()
        try:
            detail = fn()
        except Exception as exc:
            self.failures.append(f"{what}: {exc}")
            print(f"  FAIL {what}: {exc}", flush=True)
        else:
            suffix = f" ({detail})" if isinstance(detail, str) else ""
            print(f"  ok   {what}{suffix} [{time.monotonic() - started:.1f}s]", flush=True)


def error_lines(text: str) -> list[str]:
    """Lines at ERROR or above: JSON lines by their level, other lines by an ERROR/CRITICAL word or a traceback."""
    found = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and "level" in record:
            if str(record["level"]).upper() in _ERROR_LEVELS:
                found.append(line)
        elif _ERROR_WORD.search(line):
            found.append(line)
    return found


def process_facts(pid: int, rootfs: Path) -> list[str]:
    """Problems with a running process tree: not uid/gid 10001, not chrooted into the image, or /app writable."""
    problems = []
    for p in [pid, *descendants(pid)]:
        if os.readlink(f"/proc/{p}/root") != str(rootfs):
            problems.append(f"pid {p} is not chrooted into the image")
        status = dict(line.split(":", 1) for line in Path(f"/proc/{p}/status").read_text().splitlines())
        ids = status["Uid"].split() + status["Gid"].split()
        if set(ids) != {EXPECTED_USER.split(":")[0]}:
            problems.append(f"pid {p} uid/gid {ids}")
        mounts = [line.split() for line in Path(f"/proc/{p}/mountinfo").read_text().splitlines()]
        app = max((m for m in mounts if "/app".startswith(m[4].rstrip("/") + "/")), key=lambda m: len(m[4]))
        if "ro" not in app[5].split(","):
            problems.append(f"pid {p}: /app is on a writable mount ({app[4]} {app[5]})")
    return problems


def days_ago(n: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=n)).isoformat()


# -- the roles -----------------------------------------------------------------------------------------------------


def check_cli(image: Image, env: dict[str, str], one_offs: dict[str, ManagedProcess]) -> str:
    """`flask --app app relay --help` as a one-off container; plus who the image's user is and what it may write."""
    help_run = one_offs["cli"] = image.process("cli", ["flask", "--app", "app", "relay", "--help"], env)
    assert help_run.proc is not None
    code = help_run.proc.wait(timeout=60)
    out = help_run.read_log().decode(errors="replace")
    assert code == 0 and "Usage:" in out, f"exit {code}: {out[-2000:]}"
    probe = one_offs["probe"] = image.process("probe", ["sh", "-c", "id -u; id -g; touch /app/probe 2>&1 || true"], env)
    assert probe.proc is not None
    probe.proc.wait(timeout=30)
    lines = probe.read_log().decode(errors="replace").splitlines()
    assert image.config["User"] == EXPECTED_USER, f"image USER is {image.config['User']!r}"
    assert lines[:2] == EXPECTED_USER.split(":"), lines
    assert "Read-only file system" in "\n".join(lines[2:]), lines
    return f"usage printed; runs as {':'.join(lines[:2])}; writing /app: {lines[2].split(': ', 1)[-1]}"


def check_web(url: str) -> str:
    for path in ("/livez", "/readyz"):
        resp = requests.get(f"{url}{path}", timeout=10)
        assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text[:300]}"
    return "/livez 200, /readyz 200"


def check_copy(stack: LocalStack, url: str, admin_token: str) -> str:
    """One day through the API: the sandbox completes the job and calls the webhook, the image's worker copies it."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    day = days_ago(3)
    body = {"resource_type": RESOURCE_TYPE, "start_day": day, "end_day": day}
    resp = requests.post(f"{url}/api/jobs", json=body, headers=headers, timeout=30)
    assert resp.status_code in (200, 201, 202), f"submit: {resp.status_code} {resp.text[:300]}"
    sid = resp.json()["job_sid"]

    def final() -> dict | None:
        view = requests.get(f"{url}/api/jobs/{sid}", headers=headers, timeout=10).json()
        return view if view["state"] in ("done", "failed", "cancelled") else None

    view = wait_until(final, timeout=120, interval=0.5, what=f"job {sid} to finish")
    assert isinstance(view, dict) and view["state"] == "done", f"job ended {view}"
    (copied,) = view["days"]
    expected = stack.sandbox.expected_day(RESOURCE_TYPE, day)
    head = stack.s3.client().head_object(Bucket=BUCKET, Key=copied["key"])
    assert head["ContentLength"] == expected["size"], (head["ContentLength"], expected["size"])
    tags = stack.s3.client().get_object_tagging(Bucket=BUCKET, Key=copied["key"])["TagSet"]  # sha256 is a tag
    assert {"Key": "sha256", "Value": expected["sha256"]} in tags, "the S3 object is not the sandbox's day file"
    return f"{RESOURCE_TYPE} {day}: {expected['size']} bytes at s3://{BUCKET}/{copied['key']}"


def polls(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "relay_polls_total" and sample.labels.get("outcome") == "ok":
                return float(sample.value)
    return 0.0


def check_poll(url: str) -> str:
    count = wait_until(lambda: polls(url), timeout=60, interval=0.5, what="a poll by the image's poller")
    return f"relay_polls_total{{outcome=ok}} = {count:g}"


def start_sandbox_role(image: Image, env: dict[str, str]) -> ManagedProcess:
    """The image's own `sandbox` role (the local stack's sandbox runs from the repo): starts and answers."""
    port = free_port()
    sandbox_env = {**env, "SANDBOX_PORT": str(port), "SANDBOX_FILES_PORT": str(free_port())}
    proc = image.process("sandbox-role", ["sandbox", "--host", "127.0.0.1"], sandbox_env)
    health = f"http://127.0.0.1:{port}/_sandbox/health"
    proc.wait_ready(lambda: requests.get(health, timeout=2).status_code == 200, timeout=60)
    return proc


# -- the run -------------------------------------------------------------------------------------------------------


def container_env(stack: LocalStack, image: Image) -> dict[str, str]:
    """The relay's environment contract for the local stack, as paths inside the container see it."""
    env = dict(stack.env)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # a host path: the image's ENV sets its own
    if stack.s3.ca_bundle:
        shutil.copy(stack.s3.ca_bundle, image.files / "s3-ca.pem")
        env["AWS_CA_BUNDLE"] = f"{FILES_IN_ROOTFS}/s3-ca.pem"
    return {**env, "WEB_CONCURRENCY": "2"}


def start_roles(image: Image, port: int, env: dict[str, str], procs: dict[str, ManagedProcess]) -> str:
    """web, worker, poller and the sandbox role into ``procs``, each waited for (one that exits fails at once)."""
    url = f"http://127.0.0.1:{port}"
    procs["web"] = image.process("web", ["web"], {**env, "PORT": str(port)})
    procs["web"].wait_ready(lambda: requests.get(f"{url}/livez", timeout=2).status_code == 200, timeout=60)
    procs["worker"] = image.process("worker", ["worker"], env)

    def worker_registered() -> bool:
        checks = requests.get(f"{url}/health", timeout=10).json()["checks"]
        return bool(checks["workers:count"][0]["observedValue"])

    procs["worker"].wait_ready(worker_registered, timeout=60)
    procs["poller"] = image.process("poller", ["poller"], env)
    procs["poller"].wait_ready(lambda: polls(url) > 0, timeout=60)
    procs["sandbox-role"] = start_sandbox_role(image, env)
    return ", ".join(f"{name} pid {proc.pid}" for name, proc in procs.items())


def check_logs(report: Report, procs: dict[str, ManagedProcess]) -> None:
    """No line at ERROR or above in any role's log, from its start to its stop."""
    for name, proc in procs.items():

        def clean(proc: ManagedProcess = proc) -> str:
            text = proc.read_log().decode(errors="replace")
            bad = error_lines(text)
            shown = "\n".join(line if len(line) < 300 else line[:300] + " ..." for line in bad[:5])
            assert not bad, f"{len(bad)} line(s) at ERROR or above in {proc.log_path}:\n{shown}"
            return f"{len(text.splitlines())} lines"

        report.check(f"no ERROR in the {name} log", clean)


def check_processes(procs: dict[str, ManagedProcess], rootfs: Path) -> str:
    problems = [f"{name}: {p}" for name, proc in procs.items() for p in process_facts(proc.pid, rootfs)]
    assert not problems, "; ".join(problems)
    return f"{sum(1 + len(descendants(p.pid)) for p in procs.values())} processes"


def run(image: Image, workdir: Path) -> int:
    admin_token = secrets.token_urlsafe(24)
    report = Report()
    one_offs: dict[str, ManagedProcess] = {}
    roles: dict[str, ManagedProcess] = {}
    with local_stack(workdir, BUCKET, admin_token, POLL_INTERVAL_SECONDS="2") as stack:
        stack.sandbox.set_scenario(default_day_size=64 * 1024)
        env = container_env(stack, image)
        url = f"http://127.0.0.1:{stack.port}"
        print(f"image-check: running the image's roles from {image.rootfs} (logs: {image.logs})", flush=True)
        report.check("flask relay --help; USER 10001:10001; /app read-only", lambda: check_cli(image, env, one_offs))
        report.check("web, worker, poller, sandbox roles start", lambda: start_roles(image, stack.port, env, roles))
        if not report.failures:
            report.check("web answers /livez and /readyz", lambda: check_web(url))
            report.check("worker copies one day of a sandbox job", lambda: check_copy(stack, url, admin_token))
            report.check("poller runs a poll", lambda: check_poll(url))
            report.check(
                "every process: uid/gid 10001, chrooted, /app read-only", lambda: check_processes(roles, image.rootfs)
            )
        for proc in roles.values():
            proc.stop()
    stop_all()
    check_logs(report, {"cli": one_offs["cli"], **roles} if "cli" in one_offs else roles)
    if report.failures:
        for name, proc in roles.items():
            tail = "\n".join(line[:300] for line in proc.tail(15).splitlines())
            print(f"----- {name} log, last lines ({proc.log_path}) -----\n{tail}")
        print(f"image-check: {len(report.failures)} check(s) FAILED", flush=True)
        return 1
    print("image-check: every role of the image passed", flush=True)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rootfs", type=Path, required=True, help="the mounted image (buildah mount)")
    parser.add_argument("--config", type=Path, required=True, help="the image's config, as JSON")
    parser.add_argument("--rootfs-exec", type=Path, required=True, help="deploy/image-check.sh")
    parser.add_argument("--workdir", type=Path, required=True, help="logs and the local stack's data")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    files = args.workdir / "files"
    files.mkdir(exist_ok=True)
    config = json.loads(args.config.read_text())
    image = Image(args.rootfs.resolve(), config, args.rootfs_exec.resolve(), files, args.workdir / "logs")
    sys.exit(run(image, args.workdir))


if __name__ == "__main__":
    main()
