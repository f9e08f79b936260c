"""Lint and consistency checks for the deploy files: Dockerfile, entrypoint, compose, Kubernetes, IAM, lifecycle.

No network and no Docker engine: hadolint and shellcheck run from their pip packages, the Kubernetes
manifests are validated against the schemas bundled in kubernetes-validate, the S3 lifecycle against
botocore's own S3 model, the IAM policy with moto's policy validator. ``docker compose config`` runs only
where the compose plugin is installed (it needs no engine); the compose structure is checked regardless.

Drift is caught both ways: every variable of the environment contract (the ``"NAME"`` literals of
app/platform/config/) must be documented in deploy/.env.example and present in the Kubernetes ConfigMap or Secret,
and every variable those files, or compose, set must be a contract name, a knob some process reads
(``environ.get`` / ``${NAME}`` in the code, gunicorn config or Procfile), or a variable boto3 reads.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
ROLES = ("web", "worker", "poller", "sandbox")
SECRET_NAMES = {
    "REDIS_URL",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_AUTH_TOKEN_SECONDARY",
    "TWILIO_API_KEY_SID",
    "TWILIO_API_KEY_SECRET",
    "ADMIN_TOKEN",
    "CONSOLE_TOKEN",
    "CONSOLE_SECRET_KEY",
    "NOTIFY_SECRET",
}
# The contract as documented for operators: app/platform/config/ may add names, but must not lose these.
EXPECTED_CONTRACT = SECRET_NAMES | {
    "TWILIO_ACCOUNT_SID",
    "TWILIO_BULKEXPORTS_BASE_URL",
    "PUBLIC_BASE_URL",
    "WEBHOOK_METHOD",
    "WEBHOOK_SIGNATURE",
    "S3_BUCKET",
    "S3_PREFIX",
    "S3_KEY_TEMPLATE",
    "S3_SSE",
    "S3_SSE_KMS_KEY_ID",
    "S3_STORAGE_CLASS",
    "S3_SINGLE_PUT_MAX_MIB",
    "POLL_INTERVAL_SECONDS",
    "WEBHOOK_MAX_BODY_BYTES",
    "PROXY_FIX_HOPS",
    "LOG_LEVEL",
    "JOB_RETENTION_DAYS",
    "COPY_RETRY_INTERVALS",
}
K8S_VERSIONS = ("1.30.0", "1.37.0")  # an older cluster still in support, and the newest bundled schemas
CRD_KINDS = ("PrometheusRule",)  # no bundled schema: checked by tests/deploy/test_alert_rules.py instead


# -- helpers ----------------------------------------------------------------------------------------------


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _tool(name: str) -> str:
    """A binary from the venv (pip package) or PATH; skip if it is not installed at all."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (it comes from requirements-dev.txt: pip install -r it)")
    return found


@cache
def contract_names() -> frozenset[str]:
    """Every NAME_WITH_UNDERSCORES string literal in app/platform/config/: the environment contract."""
    sources = "\n".join(_read(path) for path in sorted((ROOT / "app" / "platform" / "config").glob("[!_]*.py")))
    return frozenset(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', sources))


@cache
def process_knobs() -> frozenset[str]:
    """Names a process reads besides the contract: environ.get/env(...) literals and Procfile ${NAME}s."""
    sources = [ROOT / "deploy" / "gunicorn.conf.py", ROOT / "sandbox" / "__main__.py"]
    sources += sorted((ROOT / "app").glob("*.py")) + sorted((ROOT / "workers").glob("*.py"))
    names: set[str] = set()
    for path in sources:
        if path.exists():
            names.update(re.findall(r"""(?:environ\.get|\benv)\(\s*["']([A-Z][A-Z0-9_]+)["']""", _read(path)))
    names.update(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", _read(ROOT / "Procfile")))
    names.update({"PORT", "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR"})  # gunicorn, image defaults
    return frozenset(names)


@cache
def boto_names() -> frozenset[str]:
    """Environment variables boto3/botocore read: its config variables and its credential providers."""
    from botocore import configprovider

    names: set[str] = set()
    for spec in configprovider.BOTOCORE_DEFAUT_SESSION_VARIABLES.values():
        env = spec[1]
        names.update([env] if isinstance(env, str) else list(env or ()))
    names |= {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",  # set by EKS and read by other SDKs, not by boto3: see test_region_is_set_the_way_boto3...
    }
    return frozenset(names)


def looks_secret(name: str) -> bool:
    return name in SECRET_NAMES or bool(re.search(r"TOKEN|SECRET|PASSWORD", name))


def unknown_names(names: set[str] | list[str]) -> list[str]:
    known = contract_names() | process_knobs() | boto_names()
    return sorted(n for n in names if n not in known)


def parse_env_file(path: Path) -> tuple[dict[str, str], set[str]]:
    """(KEY=VALUE assignments, names mentioned only in commented-out `# KEY=...` lines)."""
    assigned: dict[str, str] = {}
    commented: set[str] = set()
    for raw in _read(path).splitlines():
        line = raw.strip()
        if m := re.match(r"^#\s*([A-Z][A-Z0-9_]*)=", line):
            commented.add(m.group(1))
        elif line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {raw!r}"
            assigned[key.strip()] = value.strip()
    return assigned, commented - set(assigned)


def compose() -> dict[str, Any]:
    return yaml.safe_load(_read(DEPLOY / "compose.yaml"))


def k8s_docs() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(_read(path)):
            if doc:
                yield path.name, doc


def k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in k8s_docs() if d.get("kind") == kind}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined: list[str] = []
    current = ""
    for raw in _read(ROOT / "Dockerfile").splitlines():
        line = raw.strip()
        if line.startswith("#") or not (line or current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    return [(s.split(None, 1)[0].upper(), s.split(None, 1)[1] if " " in s else "") for s in joined]


# -- the contract itself ------------------------------------------------------------------------------------


def test_contract_parsed_from_config() -> None:
    assert not EXPECTED_CONTRACT - contract_names(), "app/platform/config/ lost contract names"


# -- Dockerfile, .dockerignore, entrypoint -------------------------------------------------------------------


def test_hadolint_clean() -> None:
    hadolint = _tool("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    instructions = dockerfile_instructions()
    froms = [args for op, args in instructions if op == "FROM"]
    args = dict(a.split("=", 1) for op, a in instructions if op == "ARG" and "=" in a)
    assert len(froms) >= 2, "multi-stage: a builder and a runtime stage"
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-\w+", args["PYTHON_IMAGE"]), args["PYTHON_IMAGE"]
    runtime = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    final = instructions[runtime:]
    env = " ".join(a for op, a in final if op == "ENV")
    for setting in ("PYTHONUNBUFFERED=1", "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus"):
        assert setting in env
    users = [a for op, a in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the runtime stage runs as non-root"
    assert ("EXPOSE", "8000") in final
    healthcheck = " ".join(a for op, a in final if op == "HEALTHCHECK")
    assert "/livez" in healthcheck and '"python"' in healthcheck
    assert json.loads(next(a for op, a in final if op == "ENTRYPOINT")) == ["/app/deploy/entrypoint.sh"]
    build_steps = " ".join(a for op, a in instructions if op in ("COPY", "RUN"))
    assert "requirements.txt" in build_steps and "requirements-dev" not in build_steps, "no dev dependencies"


def test_dockerfile_copies_only_runtime_files() -> None:
    allowed = {
        "Procfile",
        "pyproject.toml",
        "app/",
        "workers/",
        "sandbox/",
        "deploy/gunicorn.conf.py",
        "deploy/entrypoint.sh",
    }
    runtime = max(i for i, (op, _) in enumerate(dockerfile_instructions()) if op == "FROM")
    copied: list[str] = []
    for op, args in dockerfile_instructions()[runtime:]:
        if op == "COPY" and "--from=" not in args:
            copied += [w for w in args.split() if not w.startswith("--")][:-1]
    assert copied and set(copied) <= allowed, copied
    assert set(copied) == allowed, f"not copied: {allowed - set(copied)}"


def _dockerignore_allows(patterns: list[str], path: str) -> bool:
    """Docker's rule, simplified: the last pattern matching the path or a parent folder decides."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatch(c, glob) for c in candidates):
            included = negate
    return included


def test_dockerignore_keeps_the_build_inputs_only() -> None:
    patterns = [p.strip() for p in _read(ROOT / ".dockerignore").splitlines() if p.strip() and not p.startswith("#")]
    for needed in ("requirements.txt", "Procfile", "app/wsgi.py", "workers/tasks.py", "sandbox/__main__.py"):
        assert _dockerignore_allows(patterns, needed), needed
    for needed in ("deploy/gunicorn.conf.py", "deploy/entrypoint.sh"):
        assert _dockerignore_allows(patterns, needed), needed
    secrets = ("deploy/.env", "deploy/.env.example", "deploy/secrets/web.env", "deploy/secrets.example/web.env")
    for kept_out in (".git/config", ".venv/bin/python", "tests/conftest.py", *secrets):
        assert not _dockerignore_allows(patterns, kept_out), kept_out


def test_shellcheck_entrypoint() -> None:
    shellcheck = _tool("shellcheck")
    result = subprocess.run(
        [shellcheck, "--shell=sh", "deploy/entrypoint.sh"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(DEPLOY / "entrypoint.sh", os.X_OK), "deploy/entrypoint.sh must be executable"


@pytest.fixture
def stub_path(tmp_path: Path) -> dict[str, str]:
    """A PATH with stand-ins for gunicorn, rq, python and some other command: each prints its name, PID,
    working directory, PROMETHEUS_MULTIPROC_DIR and arguments, one a line."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("gunicorn", "rq", "python", "printf-args"):
        stub = bindir / name
        stub.write_text(
            "#!/bin/sh\n"
            f'echo "prog={name}"\n'
            'echo "pid=$$"\n'
            'echo "cwd=$(pwd)"\n'
            'echo "metrics=${PROMETHEUS_MULTIPROC_DIR-UNSET}"\n'
            'for a in "$@"; do echo "arg=$a"; done\n'
        )
        stub.chmod(0o755)
    return {
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "RELAY_PROCFILE": str(ROOT / "Procfile"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }


def _run_entrypoint(env: dict[str, str], *args: str) -> tuple[str, list[str], dict[str, str]]:
    result = subprocess.run(
        ["/bin/sh", str(DEPLOY / "entrypoint.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = result.stdout.splitlines()
    argv = [line[4:] for line in lines if line.startswith("arg=")]
    state = dict(line.split("=", 1) for line in lines if not line.startswith("arg="))
    return state["prog"], argv, state


def _procfile_argv(role: str, env: dict[str, str]) -> list[str]:
    """The Procfile line for ROLE as a shell splits it (its variables expanded by a real sh)."""
    line = next(line for line in _read(ROOT / "Procfile").splitlines() if line.startswith(f"{role}:"))
    script = f'set -- {line.split(":", 1)[1]}; for a in "$@"; do echo "$a"; done'
    out = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


@pytest.mark.parametrize("role", ["web", "worker", "poller"])
def test_entrypoint_runs_the_procfile_command(role: str, stub_path: dict[str, str]) -> None:
    prog, argv, state = _run_entrypoint(stub_path, role, "--extra", "two words")
    expected = _procfile_argv(role, stub_path)
    assert prog == expected[0]
    assert state["cwd"] == str(ROOT), "Procfile paths are relative to its folder"
    if role == "worker":  # RQ names each worker itself (a uuid): no --name that could collide after a restart
        assert "--name" not in argv
    assert argv == [*expected[1:], "--extra", "two words"]
    if role == "web":
        assert state["metrics"] == stub_path["PROMETHEUS_MULTIPROC_DIR"]
        assert Path(stub_path["PROMETHEUS_MULTIPROC_DIR"]).is_dir()
    else:
        assert state["metrics"] == "UNSET"


def test_entrypoint_sandbox_and_passthrough(stub_path: dict[str, str]) -> None:
    prog, argv, state = _run_entrypoint(stub_path, "sandbox", "--log-level", "DEBUG")
    assert (prog, state["cwd"]) == ("python", str(ROOT))
    listen = ["--host", "0.0.0.0", "--port", "8080", "--files-port", "8081"]
    assert argv == ["-m", "sandbox", *listen, "--log-level", "DEBUG"]
    prog, argv, _ = _run_entrypoint(stub_path, "printf-args", "a b", "c")
    assert (prog, argv) == ("printf-args", ["a b", "c"])
    prog, _, _ = _run_entrypoint(stub_path)
    assert prog == "gunicorn", "no argument means web"


# -- compose ------------------------------------------------------------------------------------------------


APP_SERVICES = ("web", "worker", "poller")
LOCAL_SERVICES = ("s3", "s3-init", "sandbox")


class _ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's ``!reset`` tag (an override that clears the base file's value)."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: RESET)
RESET = object()


def compose_local() -> dict[str, Any]:
    return yaml.load(_read(DEPLOY / "compose.local.yaml"), Loader=_ComposeLoader)  # noqa: S506 - SafeLoader subclass


def compose_merged() -> dict[str, Any]:
    """compose.yaml with compose.local.yaml on top, merged the way Compose does for the keys used here
    (mappings merge, sequences append, ``!reset`` clears)."""
    merged = {name: dict(spec) for name, spec in compose()["services"].items()}
    for name, spec in compose_local()["services"].items():
        target = merged.setdefault(name, {})
        for key, value in spec.items():
            if value is RESET:
                target.pop(key, None)
            elif isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            elif isinstance(value, list) and isinstance(target.get(key), list) and key != "command":
                target[key] = [*target[key], *value]
            else:
                target[key] = value
    return merged


def test_compose_services() -> None:
    services = compose()["services"]
    assert set(services) == {*APP_SERVICES, "redis"}, "the stand-ins live in compose.local.yaml only"
    assert not [n for n, spec in services.items() if "profiles" in spec]
    for name in APP_SERVICES:
        assert services[name]["command"] == [name]
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    local = compose_local()["services"]
    assert set(local) == {*APP_SERVICES, "redis", *LOCAL_SERVICES}
    merged = compose_merged()
    images = {merged[n]["image"] for n in (*APP_SERVICES, "s3-init", "sandbox")}
    assert len(images) == 1, f"one image for every role: {images}"
    for name in ROLES:
        assert merged[name]["command"] == [name]
    for name in ("web", "worker"):
        deps = merged[name]["depends_on"]
        assert deps["s3-init"]["condition"] == "service_completed_successfully"
        assert deps["sandbox"]["condition"] == "service_started"


def test_compose_local_is_one_loopback_stack() -> None:
    """The relay refuses plain http off loopback and loopback downloads unless Twilio is on loopback: the local
    try-out therefore runs every container in Redis' network namespace and points everything at 127.0.0.1."""
    merged = compose_merged()
    for name in (*APP_SERVICES, *LOCAL_SERVICES):
        assert merged[name]["network_mode"] == "service:redis", name
        assert "ports" not in merged[name], f"{name}: only the namespace's owner (redis) publishes ports"
    assert "network_mode" not in merged["redis"]
    assert all(p.startswith("127.0.0.1:") for p in merged["redis"]["ports"])
    from app.platform.config import is_loopback_host, load_settings

    for name in APP_SERVICES:
        env = merged[name]["environment"]
        for url_name in ("TWILIO_BULKEXPORTS_BASE_URL", "PUBLIC_BASE_URL", "AWS_ENDPOINT_URL_S3"):
            assert is_loopback_host(urlsplit(env[url_name]).hostname), (name, url_name)
    assert merged["sandbox"]["environment"]["SANDBOX_PUBLIC_HOST"] == "127.0.0.1"
    for role in ("web", "worker"):  # what those processes will load: the env files, then the local overrides
        settings = load_settings({**_compose_env_files(merged[role]), **merged[role]["environment"]})
        assert settings.download_allow_loopback and settings.download_host_allowlist == ("127.0.0.1",)
    assert compose()["services"]["web"]["ports"] == ["127.0.0.1:8000:8000"], "the single-host file keeps its port"


def _seconds(duration: str) -> int:
    total = 0
    for amount, unit in re.findall(r"(\d+)([hms])", duration):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def test_compose_replicas_and_grace_periods() -> None:
    services = compose()["services"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["poller"]["deploy"]["replicas"] == 1
    assert _seconds(services["worker"]["stop_grace_period"]) >= 15 * 60
    assert _seconds(services["web"]["stop_grace_period"]) > 30, "longer than gunicorn's graceful_timeout"


def test_compose_redis_is_durable_and_never_evicts() -> None:
    redis = compose()["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])


def _env_file_paths(spec: dict[str, Any]) -> list[Path]:
    """A service's env files at their defaults (``${VAR:-default}`` resolved), relative to deploy/."""
    return [DEPLOY / re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", entry["path"]) for entry in spec.get("env_file", [])]


def _compose_env_files(spec: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for path in _env_file_paths(spec):
        env.update(parse_env_file(path)[0])
    return env


def test_compose_env_files_exist_and_hold_no_inline_secrets() -> None:
    merged = compose_merged()
    for name in (*APP_SERVICES, "s3-init"):
        paths = _env_file_paths(merged[name])
        assert [p.name for p in paths] == [".env.example", f"{'worker' if name == 's3-init' else name}.env"], name
        for path in paths:
            assert path.is_file(), f"{name}: env file {path} is missing"
        inline = [n for n in merged[name].get("environment") or {} if looks_secret(n)]
        assert not inline, f"{name}: secrets belong in the env files, not in compose: {inline}"


def test_compose_environment_names_are_known() -> None:
    merged = compose_merged()
    names = {n for s in (*APP_SERVICES, "s3-init") for n in (merged[s].get("environment") or {})}
    assert not unknown_names(names)
    sandbox_env = set(merged["sandbox"].get("environment") or {})
    assert sandbox_env <= process_knobs(), sandbox_env - process_knobs()


def test_docker_compose_config() -> None:
    docker = shutil.which("docker")
    probe = docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    if not probe or probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed (it needs no engine where it is)")
    result = subprocess.run(
        [docker, "compose", "-f", "deploy/compose.yaml", "-f", "deploy/compose.local.yaml", "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# -- the env example --------------------------------------------------------------------------------------


SECRETS_EXAMPLE = DEPLOY / "secrets.example"


def test_env_example_documents_every_contract_variable() -> None:
    assigned, commented = parse_env_file(DEPLOY / ".env.example")
    missing = contract_names() - set(assigned) - commented
    assert not missing, f"document these in deploy/.env.example: {sorted(missing)}"
    assert not unknown_names(set(assigned) | commented)
    assert not [n for n in assigned if looks_secret(n) or n == "REDIS_URL"], "secrets go in the role's secrets file"


def test_env_example_with_each_roles_secrets_is_a_valid_configuration() -> None:
    from app.platform.config import load_schedule, load_settings, require_web_settings

    shared, _ = parse_env_file(DEPLOY / ".env.example")
    web = load_settings({**shared, **parse_env_file(SECRETS_EXAMPLE / "web.env")[0]})
    assert require_web_settings(web).webhook_signature == "required"
    worker = load_settings({**shared, **parse_env_file(SECRETS_EXAMPLE / "worker.env")[0]})
    assert worker.admin_token is None
    assert load_schedule({**shared, **parse_env_file(SECRETS_EXAMPLE / "poller.env")[0]}) == (60, 3600)


def _env_sources() -> dict[str, dict[str, str]]:
    sources = {".env.example": parse_env_file(DEPLOY / ".env.example")[0]}
    for path in sorted(SECRETS_EXAMPLE.glob("*.env")):
        sources[f"secrets.example/{path.name}"] = parse_env_file(path)[0]
    for name, doc in k8s_docs():
        if doc["kind"] == "ConfigMap":
            sources[f"{name}:{doc['metadata']['name']}"] = doc.get("data") or {}
        if doc["kind"] == "Secret":
            sources[f"{name}:{doc['metadata']['name']}"] = doc.get("stringData") or {}
    for service, spec in compose_merged().items():
        if service in (*APP_SERVICES, "s3-init"):
            sources[f"compose:{service}"] = {k: str(v) for k, v in (spec.get("environment") or {}).items()}
    return sources


def test_no_aws_variable_is_set_empty() -> None:
    """botocore rejects some empty AWS_* values (AWS_CA_BUNDLE, AWS_REQUEST_CHECKSUM_CALCULATION)."""
    for source, env in _env_sources().items():
        empty = [k for k, v in env.items() if k.startswith("AWS_") and not str(v).strip()]
        assert not empty, f"{source}: remove (do not empty) {empty}"


def test_region_is_set_the_way_boto3_reads_it() -> None:
    """boto3 takes the region from AWS_DEFAULT_REGION; AWS_REGION alone would silently mean us-east-1."""
    for source, env in _env_sources().items():
        if "AWS_REGION" in env:
            assert "AWS_DEFAULT_REGION" in env, source
    assert "AWS_DEFAULT_REGION" in k8s_objects("ConfigMap")["bulkexport-relay-config"]["data"]


# -- Kubernetes -----------------------------------------------------------------------------------------------


def _k8s_params() -> list[Any]:
    return [
        pytest.param(doc, version, id=f"{name}:{doc['kind']}/{doc['metadata']['name']}@{version}")
        for name, doc in k8s_docs()
        if doc.get("kind") not in ("Kustomization", *CRD_KINDS)
        for version in K8S_VERSIONS
    ]


@pytest.mark.parametrize(("doc", "version"), _k8s_params())
def test_k8s_schema(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{'.'.join(map(str, exc.path))}: {exc.message}")


def test_k8s_is_namespace_agnostic_and_kustomization_complete() -> None:
    for name, doc in k8s_docs():
        assert "namespace" not in doc.get("metadata", {}), f"{name}: no namespace in the manifests"
    kustomization = yaml.safe_load(_read(K8S / "kustomization.yaml"))
    listed = set(kustomization["resources"])
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == manifests - {"secret.example.yaml"}, "every manifest but the example Secret"
    images = {c["image"] for d in k8s_objects("Deployment").values() for c in _containers(d)}
    assert {i.rsplit(":", 1)[0] for i in images} == {kustomization["images"][0]["name"]}


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]


def _deployment(component: str) -> dict[str, Any]:
    return k8s_objects("Deployment")[f"bulkexport-relay-{component}"]


def test_k8s_pods_are_locked_down() -> None:
    service_accounts = k8s_objects("ServiceAccount")
    for component in ("web", "worker", "poller"):
        pod = _deployment(component)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] in service_accounts
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        (container,) = pod["containers"]
        assert container["args"] == [component]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
        volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
        assert "emptyDir" in volume
        assert {"requests", "limits"} <= set(container["resources"])
    uid = re.search(r"^ARG APP_UID=(\d+)$", _read(ROOT / "Dockerfile"), re.MULTILINE)
    assert uid, "the Dockerfile pins the app user's uid"
    for component in ("web", "worker", "poller"):
        assert _deployment(component)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid[1])


IRSA = "eks.amazonaws.com/role-arn"


def test_k8s_one_service_account_per_role_and_only_web_and_worker_get_aws() -> None:
    accounts = k8s_objects("ServiceAccount")
    assert set(accounts) == {f"bulkexport-relay-{role}" for role in APP_SERVICES}
    for role in APP_SERVICES:
        account = accounts[f"bulkexport-relay-{role}"]
        assert account["automountServiceAccountToken"] is False, role
        assert account["metadata"]["labels"]["app.kubernetes.io/component"] == role
        pod = _deployment(role)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == f"bulkexport-relay-{role}" and pod["automountServiceAccountToken"] is False
    web, worker = (accounts[f"bulkexport-relay-{r}"]["metadata"]["annotations"][IRSA] for r in ("web", "worker"))
    assert web != worker, "separate IAM roles for the web and the workers"
    assert IRSA not in (accounts["bulkexport-relay-poller"]["metadata"].get("annotations") or {}), "no AWS identity"


def test_k8s_web() -> None:
    web = _deployment("web")
    pod = web["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert int(pre_stop[1]) + 30 < pod["terminationGracePeriodSeconds"] <= 120, "sleep + graceful_timeout"
    assert "replicas" not in web["spec"], "the HPA owns the web's replica count"
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    assert int(env["WEB_CONCURRENCY"]) >= 1, "gunicorn would count the node's CPUs"
    (service,) = k8s_objects("Service").values()
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["targetPort"] in ("http", 8000)
    assert service["spec"]["selector"] == web["spec"]["template"]["metadata"]["labels"]
    (hpa,) = k8s_objects("HorizontalPodAutoscaler").values()
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "bulkexport-relay-web",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2


def test_k8s_worker_and_poller() -> None:
    worker, poller = _deployment("worker"), _deployment("poller")
    assert worker["spec"]["replicas"] == 2
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 900
    (container,) = _containers(worker)
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container), "no HTTP listener"
    assert poller["spec"]["replicas"] == 1, "exactly one rq cron"
    assert poller["spec"]["strategy"] == {"type": "Recreate"}


def test_k8s_disruption_budgets_select_their_pods() -> None:
    budgets = k8s_objects("PodDisruptionBudget")
    assert set(budgets) == {"bulkexport-relay-web", "bulkexport-relay-worker"}
    for name, budget in budgets.items():
        labels = k8s_objects("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
    for deployment in k8s_objects("Deployment").values():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


# What each role's Secret (and compose secrets file) holds: exactly what that process needs (issue 12).
ROLE_SECRETS = {
    "web": {
        "REDIS_URL",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_AUTH_TOKEN_SECONDARY",  # webhook signatures: the web's job only
        "TWILIO_API_KEY_SID",
        "TWILIO_API_KEY_SECRET",
        "ADMIN_TOKEN",  # the admin API: the web's alone
        "CONSOLE_TOKEN",  # the console's own sign-in token (optional): the web's alone
        "CONSOLE_SECRET_KEY",  # signs the console's cookies (optional: else one kept in Redis): the web's alone
    },
    "worker": {"REDIS_URL", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET", "NOTIFY_SECRET"},
    "poller": {"REDIS_URL"},  # rq cron only enqueues (workers/cron_settings.py)
}
AWS_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
LOCAL_STACK_ONLY = {"RELAY_CLOCK_OFFSET_FILE"}  # refused unless Twilio is on loopback: documented, never deployed


def _role_secret(role: str) -> dict[str, Any]:
    return k8s_objects("Secret")[f"bulkexport-relay-{role}-secrets"]


def test_k8s_one_secret_per_role_with_only_that_roles_keys() -> None:
    roles = {f"bulkexport-relay-{role}-secrets" for role in APP_SERVICES}
    assert set(k8s_objects("Secret")) == roles | {ACCOUNTS_SECRET}, "one per role, and the accounts file"
    for role, keys in ROLE_SECRETS.items():
        assert set(_role_secret(role)["stringData"]) == keys, role
        assert _role_secret(role)["metadata"]["labels"]["app.kubernetes.io/component"] == role
    assert set().union(*ROLE_SECRETS.values()) == SECRET_NAMES & contract_names(), "every secret has a home"
    for role in ("worker", "poller"):
        assert "ADMIN_TOKEN" not in _role_secret(role)["stringData"], role


# -- many Twilio accounts: TWILIO_ACCOUNTS_FILE, a file mounted from a secret by the web and the workers only ---

ACCOUNTS_SECRET = "bulkexport-relay-accounts"
ACCOUNTS_PATH = "/etc/relay/accounts.json"
ACCOUNT_SETTINGS = {
    "TWILIO_ACCOUNTS_FILE",
    "TWILIO_DISCOVER_SUBACCOUNTS",
    "ACCOUNTS_REFRESH_SECONDS",
    "TWILIO_API_BASE_URL",
}


def _accounts_template() -> str:
    """The S3_KEY_TEMPLATE deploy/.env.example proposes for several accounts (partitioned by account and day)."""
    _, commented = parse_env_file(DEPLOY / ".env.example")
    assert "S3_KEY_TEMPLATE" in commented
    (template,) = re.findall(
        r"^# S3_KEY_TEMPLATE=(\S*account=\{account_sid\}\S*)$", _read(DEPLOY / ".env.example"), re.M
    )
    return template


def _secret_volumes(role: str) -> list[dict[str, Any]]:
    return [v for v in _deployment(role)["spec"]["template"]["spec"].get("volumes", []) if "secret" in v]


def test_account_settings_are_in_the_contract_and_off_by_default() -> None:
    assert contract_names() >= ACCOUNT_SETTINGS
    (config,) = k8s_objects("ConfigMap").values()
    assert {k: config["data"][k] for k in ACCOUNT_SETTINGS} == {
        "TWILIO_ACCOUNTS_FILE": "",  # set once the Secret exists: a path that is not there stops web and workers
        "TWILIO_DISCOVER_SUBACCOUNTS": "false",
        "ACCOUNTS_REFRESH_SECONDS": "600",
        "TWILIO_API_BASE_URL": "https://api.twilio.com",
    }
    _, commented = parse_env_file(DEPLOY / ".env.example")
    assert commented >= ACCOUNT_SETTINGS, "documented, commented out: one account needs none of them"
    assert re.search(rf"^# TWILIO_ACCOUNTS_FILE={re.escape(ACCOUNTS_PATH)}$", _read(DEPLOY / ".env.example"), re.M)
    assert "{prefix}{resource_type}/account={account_sid}/day={day}/" in _accounts_template()


def test_k8s_accounts_file_is_mounted_by_web_and_worker_only() -> None:
    for role in ("web", "worker"):
        (volume,) = _secret_volumes(role)
        secret = volume["secret"]
        assert secret["secretName"] == ACCOUNTS_SECRET and secret["optional"] is True, role
        assert secret["items"] == [{"key": "accounts.json", "path": os.path.basename(ACCOUNTS_PATH)}], role
        assert secret["defaultMode"] & 0o7 == 0 and not secret["defaultMode"] & 0o222, f"{role}: not world-readable"
        (container,) = _containers(_deployment(role))
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        assert mount == {"name": volume["name"], "mountPath": os.path.dirname(ACCOUNTS_PATH), "readOnly": True}
    assert _secret_volumes("poller") == [], "the poller makes no Twilio call: no account's credentials"
    (poller,) = _containers(_deployment("poller"))
    assert not [m for m in poller.get("volumeMounts", []) if m["mountPath"].startswith("/etc/relay")]


def _example_accounts(tmp_path: Path) -> dict[str, Path]:
    """The two examples of the accounts file as files: the Secret's (k8s) and secrets.example/accounts.json."""
    k8s = tmp_path / "k8s-accounts.json"
    k8s.write_text(k8s_objects("Secret")[ACCOUNTS_SECRET]["stringData"]["accounts.json"])
    return {"k8s": k8s, "compose": SECRETS_EXAMPLE / "accounts.json"}


def test_the_example_accounts_files_make_valid_configurations(tmp_path: Path) -> None:
    """The k8s ConfigMap and the env example, each with its accounts file and the proposed template: web and
    worker start, every account listed with its family, every credential in the log scrubber's list."""
    from app.platform.config import ConfigError, load_settings, require_web_settings

    (config,) = k8s_objects("ConfigMap").values()
    shared, _ = parse_env_file(DEPLOY / ".env.example")
    bases = {
        "k8s": (config["data"], lambda r: _role_secret(r)["stringData"]),
        "compose": (shared, lambda r: parse_env_file(SECRETS_EXAMPLE / f"{r}.env")[0]),
    }
    for name, path in _example_accounts(tmp_path).items():
        base, secrets_of = bases[name]
        listed = json.loads(path.read_text())
        for role in ("web", "worker"):
            env = {
                **base,
                **secrets_of(role),
                "TWILIO_ACCOUNTS_FILE": str(path),
                "S3_KEY_TEMPLATE": _accounts_template(),
            }
            settings = load_settings(env)
            if role == "web":
                require_web_settings(settings)
            assert [a.sid for a in settings.accounts.listed] == [e["sid"] for e in listed], name
            assert all(a.parent_sid == env["TWILIO_ACCOUNT_SID"] for a in settings.accounts.listed), "one family"
            tokens = [e[k] for e in listed for k in ("auth_token", "api_key_secret") if k in e]
            assert set(tokens) <= set(settings.secrets), f"{name}: scrubbed from logs"
            with pytest.raises(ConfigError, match="S3_KEY_TEMPLATE"):
                load_settings({**env, "S3_KEY_TEMPLATE": ""})  # two accounts' days must never share a key


def test_compose_mounts_the_accounts_file_into_web_and_worker_only() -> None:
    services = compose()["services"]
    for role in ("web", "worker"):
        binds = [v for v in services[role].get("volumes", []) if isinstance(v, dict) and v["target"] == ACCOUNTS_PATH]
        assert len(binds) == 1, role
        assert binds[0]["type"] == "bind" and binds[0]["read_only"] is True, role
        assert binds[0]["source"] == "${RELAY_ACCOUNTS_FILE:-/dev/null}", f"{role}: opt-in, nothing by default"
    assert "volumes" not in services["poller"], "the poller makes no Twilio call: no account's credentials"
    patterns = [p.strip() for p in _read(ROOT / ".dockerignore").splitlines() if p.strip() and not p.startswith("#")]
    assert not _dockerignore_allows(patterns, "deploy/secrets.example/accounts.json")


def test_compose_secrets_files_hold_only_their_roles_keys() -> None:
    for role, keys in ROLE_SECRETS.items():
        assigned, commented = parse_env_file(SECRETS_EXAMPLE / f"{role}.env")
        named = set(assigned) | commented
        allowed = keys | (AWS_KEYS if role != "poller" else set())  # static keys where no IAM role is attached
        assert named - allowed == set(), f"{role}.env: {sorted(named - allowed)} do not belong to the {role}"
        assert keys <= named, f"{role}.env should document {sorted(keys - named)}"
    assert "ADMIN_TOKEN" not in parse_env_file(SECRETS_EXAMPLE / "worker.env")[0]
    assert set(parse_env_file(SECRETS_EXAMPLE / "poller.env")[0]) == {"REDIS_URL"}


def test_k8s_environment_matches_the_contract() -> None:
    (config,) = k8s_objects("ConfigMap").values()
    config_names = set(config["data"])
    secret_names = {n for role in APP_SERVICES for n in _role_secret(role)["stringData"]}
    assert not [n for n in config_names if looks_secret(n) or n == "REDIS_URL"], "no secret in the ConfigMap"
    missing = contract_names() - config_names - secret_names - LOCAL_STACK_ONLY
    assert not missing, f"add to deploy/k8s/configmap.yaml: {sorted(missing)}"
    assert not LOCAL_STACK_ONLY & config_names, "test-only settings stay out of a deployment"
    inline = {e["name"] for d in k8s_objects("Deployment").values() for c in _containers(d) for e in c.get("env", [])}
    assert not unknown_names(config_names | secret_names | inline)
    for role in APP_SERVICES:
        (container,) = _containers(_deployment(role))
        refs = {(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()}
        assert refs == {("configMapRef", config["metadata"]["name"]), ("secretRef", f"bulkexport-relay-{role}-secrets")}
        assert not [e for e in container.get("env", []) if looks_secret(e["name"]) or "valueFrom" in e], role


def test_k8s_config_and_each_roles_secret_form_a_valid_configuration() -> None:
    """Each process as it starts: the web needs its admin token, the worker runs without one, the poller reads
    its schedule only."""
    from app.platform.config import load_schedule, load_settings, require_web_settings

    (config,) = k8s_objects("ConfigMap").values()
    web = load_settings({**config["data"], **_role_secret("web")["stringData"]})
    assert require_web_settings(web).webhook_signature == "required"
    assert load_settings({**config["data"], **_role_secret("worker")["stringData"]}).admin_token is None
    assert load_schedule({**config["data"], **_role_secret("poller")["stringData"]}) == (60, 3600)


def test_the_poller_loads_no_credentials() -> None:
    """rq cron runs with workers.cron_settings, which builds no services (no Twilio client, no S3 client): its
    Secret can hold REDIS_URL alone. (tests/integration/test_role_secrets.py runs it so.)"""
    poller = next(line for line in _read(ROOT / "Procfile").splitlines() if line.startswith("poller:"))
    assert "--config workers.cron_settings" in poller
    imported = re.findall(r"^(?:from|import) ([\w.]+)", _read(ROOT / "workers" / "cron_settings.py"), re.MULTILINE)
    assert set(imported) <= {"os", "app.platform.logs"}, imported
    assert "load_settings" not in _read(ROOT / "workers" / "cron_config.py")


# -- NetworkPolicies ------------------------------------------------------------------------------------------

PUBLIC_EXCEPT_V4 = {"10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"}


def _policy_for(role: str) -> dict[str, Any]:
    return k8s_objects("NetworkPolicy")[f"bulkexport-relay-{role}"]["spec"]


def _egress_ports(rule: dict[str, Any]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for p in rule.get("ports", [])}


def _egress_kinds(role: str) -> dict[str, dict[str, Any]]:
    """The role's egress rules by what they reach: dns, redis, https (anything else fails the lookup)."""
    kinds: dict[str, dict[str, Any]] = {}
    for rule in _policy_for(role)["egress"]:
        ports = _egress_ports(rule)
        kind = {
            frozenset({("UDP", 53), ("TCP", 53)}): "dns",
            frozenset({("TCP", 6379)}): "redis",
            frozenset({("TCP", 443)}): "https",
        }[frozenset(ports)]
        assert kind not in kinds, f"{role}: two {kind} rules"
        kinds[kind] = rule
    return kinds


def test_k8s_network_policies_select_each_roles_pods_and_deny_the_rest() -> None:
    assert set(k8s_objects("NetworkPolicy")) == {f"bulkexport-relay-{role}" for role in APP_SERVICES}
    for role in APP_SERVICES:
        spec = _policy_for(role)
        labels = _deployment(role)["spec"]["template"]["metadata"]["labels"]
        assert spec["podSelector"]["matchLabels"] == labels, role
        assert set(spec["policyTypes"]) == {"Ingress", "Egress"}, f"{role}: both directions default-deny"
    web_ingress = _policy_for("web")["ingress"]
    (rule,) = web_ingress
    (container,) = _containers(_deployment("web"))
    assert rule["ports"] == [{"protocol": "TCP", "port": container["ports"][0]["containerPort"]}], "its port only"
    for role in ("worker", "poller"):
        assert _policy_for(role)["ingress"] == [], f"{role} has no listener: no ingress at all"


NAT64_PREFIXES = ("64:ff9b::/96", "64:ff9b:1::/48")  # RFC 6052's well-known prefix, RFC 8215's local-use one


def _assert_no_nat64_way_to(v6_except: set[str], role: str) -> None:
    """Through NAT64 an IPv6 address reaches an IPv4 one: every private IPv4 block the IPv4 rule refuses must be
    refused in its NAT64 form too (the IPv4 address in the last 32 bits of 64:ff9b::/96), and the local-use
    prefix (whose embedding depends on the operator's prefix length) as a whole."""
    refused = [ipaddress.ip_network(c) for c in v6_except]
    well_known = int(ipaddress.ip_network(NAT64_PREFIXES[0]).network_address)
    for v4 in [*sorted(PUBLIC_EXCEPT_V4), "127.0.0.0/8"]:
        net = ipaddress.ip_network(v4)
        embedded = ipaddress.ip_network((well_known | int(net.network_address), 96 + net.prefixlen))
        assert any(embedded.subnet_of(r) for r in refused), f"{role}: {v4} is reachable as {embedded} (NAT64)"
    local_use = ipaddress.ip_network(NAT64_PREFIXES[1])
    assert any(local_use.subnet_of(r) for r in refused), f"{role}: NAT64's local-use prefix {local_use} is open"


def test_k8s_network_policy_egress_per_role() -> None:
    expected = {"web": {"dns", "redis", "https"}, "worker": {"dns", "redis", "https"}, "poller": {"dns", "redis"}}
    for role, kinds in expected.items():
        rules = _egress_kinds(role)
        assert set(rules) == kinds, role
        (dns,) = rules["dns"]["to"]
        assert dns["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
        assert dns["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
        (redis,) = rules["redis"]["to"]
        assert set(redis) == {"ipBlock"} and "except" not in redis["ipBlock"], f"{role}: Redis' subnet only"
        if "https" in rules:
            blocks = {b["ipBlock"]["cidr"]: set(b["ipBlock"].get("except", [])) for b in rules["https"]["to"]}
            assert blocks["0.0.0.0/0"] == PUBLIC_EXCEPT_V4, f"{role}: 443 to public IPv4 only (no metadata, no LAN)"
            assert blocks["::/0"] >= {"fc00::/7", "fe80::/10"}, f"{role}: 443 to public IPv6 only"
            _assert_no_nat64_way_to(blocks["::/0"], role)
    redis_cidrs = {r: _egress_kinds(r)["redis"]["to"][0]["ipBlock"]["cidr"] for r in APP_SERVICES}
    assert len(set(redis_cidrs.values())) == 1, f"one Redis subnet for every role: {redis_cidrs}"


# -- IAM policies (one file per role) and S3 lifecycle -----------------------------------------------------------

# Every S3 call the code makes -> the IAM actions it needs. A new call fails the tests below until it is mapped
# here (and allowed in the policy of each role that makes it).
S3_CALL_ACTIONS = {
    "head_object": {"s3:GetObject"},  # plus s3:ListBucket, or a missing key is 403 instead of 404
    "get_object": {"s3:GetObject"},  # the registry marker's copy (app/jobs/recovery.py, S3Sink.read_marker)
    "head_bucket": {"s3:ListBucket"},  # /health (app/s3_client.probe_bucket)
    "put_object": {"s3:PutObject"},
    "upload_fileobj": {"s3:PutObject", "s3:AbortMultipartUpload"},  # multipart: Create/UploadPart/Complete
    "copy": {"s3:GetObject", "s3:PutObject"},  # managed copy (UploadPartCopy): relay migrate-layout over 5 GiB
    "copy_object": {"s3:GetObject", "s3:PutObject"},  # relay migrate-layout: the old key to the new one
    "delete_object": {"s3:DeleteObject"},
    "delete_objects": {"s3:DeleteObject"},
    "abort_multipart_upload": {"s3:AbortMultipartUpload"},
    "list_multipart_uploads": {"s3:ListBucketMultipartUploads"},
    "list_objects_v2": {"s3:ListBucket"},
    "create_multipart_upload": {"s3:PutObject"},
    "upload_part": {"s3:PutObject"},
    "complete_multipart_upload": {"s3:PutObject"},
    "put_object_tagging": {"s3:PutObjectTagging"},
    "get_object_tagging": {"s3:GetObjectTagging"},
}
# Which code each role runs: the web only app/ (tests/unit/test_architecture.py: the core never imports workers),
# the worker app/ and workers/. The poller runs neither's S3 code (test_the_poller_loads_no_credentials).
ROLE_SOURCES = {"web": ("app",), "worker": ("app", "workers")}
# The store probe writes a few objects under <S3_PREFIX>_relay/: workers run it (and `relay doctor`, with their
# credentials); the web only reads its cached findings from Redis (app/web/health.py), never calls it.
WORKER_ONLY = ("app/bucket/probe.py",)
PROBING = ("probe_store(", "store_findings(", "write_path(")
IAM_ROLES = ("web", "worker")
KMS_ACTIONS = {"kms:GenerateDataKey", "kms:Decrypt"}


def _policy(role: str) -> dict[str, Any]:
    return json.loads(_read(DEPLOY / f"iam-policy-{role}.json"))


def _statements(role: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in _policy(role)["Statement"]}


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _allowed(role: str, service: str = "s3") -> set[str]:
    actions = {a for s in _policy(role)["Statement"] if s["Effect"] == "Allow" for a in _as_list(s["Action"])}
    return {a for a in actions if a.startswith(f"{service}:")}


@cache
def s3_client_methods() -> frozenset[str]:
    """Every method of a boto3 S3 client: the API's operations (snake case) and s3transfer's helpers."""
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model("s3")
    transfer = {"upload_file", "upload_fileobj", "download_file", "download_fileobj", "copy"}
    return frozenset({xform_name(op) for op in model.operation_names} | transfer)


def s3_calls(*packages: str, exclude: tuple[str, ...] = ()) -> set[str]:
    """The S3 client methods called in these packages (``client.x(`` with x an S3 method, ``get_paginator("x")``);
    other clients' calls (Redis: ``client.register_script(``) do not count."""
    calls: set[str] = set()
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if str(path.relative_to(ROOT)) in exclude:
                continue
            source = _read(path)
            calls |= set(re.findall(r"\bclient\.(\w+)\(", source)) & s3_client_methods()
            calls |= set(re.findall(r"get_paginator\(\s*[\"'](\w+)[\"']", source))
    return calls


def test_iam_policies_one_per_role_are_valid() -> None:
    validation = pytest.importorskip("moto.iam.policy_validation")
    assert {p.name for p in DEPLOY.glob("iam-policy*.json")} == {f"iam-policy-{r}.json" for r in IAM_ROLES}
    for role in IAM_ROLES:
        validation.IAMPolicyDocumentValidator(_read(DEPLOY / f"iam-policy-{role}.json")).validate()
        assert _policy(role)["Version"] == "2012-10-17"


@pytest.mark.parametrize("role", IAM_ROLES)
def test_iam_policy_allows_exactly_the_s3_calls_of_its_role(role: str) -> None:
    calls = s3_calls(*ROLE_SOURCES[role], exclude=WORKER_ONLY if role == "web" else ())
    unmapped = calls - set(S3_CALL_ACTIONS)
    assert not unmapped, f"new S3 calls: map them in S3_CALL_ACTIONS (and the {role} policy): {unmapped}"
    needed = set().union(*(S3_CALL_ACTIONS[c] for c in calls))
    assert _allowed(role) == needed, f"{role}: missing {needed - _allowed(role)}, not needed {_allowed(role) - needed}"


def test_the_web_policy_cannot_write_read_or_delete_objects() -> None:
    # /health's probe, and /readyz's look for the registry marker by listing (app/recovery.registry_state)
    web_calls = s3_calls("app", exclude=WORKER_ONLY)
    assert web_calls == {"head_bucket", "list_objects_v2"}, "the web only probes and lists the bucket"
    (statement,) = _policy("web")["Statement"]
    assert _as_list(statement["Action"]) == ["s3:ListBucket"]
    assert statement["Resource"] == "arn:aws:s3:::YOUR_BUCKET"
    assert not _allowed("web", "kms"), "HeadBucket needs no key"


def test_the_web_never_runs_the_store_probe() -> None:
    """Only workers (tasks.store_path) and `relay doctor` (app/cli/doctor.py, run with the workers' credentials)
    probe."""
    for path in sorted((ROOT / "app").rglob("*.py")):
        if str(path.relative_to(ROOT)) not in (*WORKER_ONLY, "app/cli/doctor.py"):
            assert not any(name in _read(path) for name in PROBING), path
    assert any(name in _read(ROOT / "workers" / "tasks.py") for name in PROBING)


def test_iam_policies_are_least_privilege() -> None:
    for role in IAM_ROLES:
        for sid, statement in _statements(role).items():
            actions, resources = _as_list(statement["Action"]), _as_list(statement["Resource"])
            assert all("*" not in a for a in actions), f"{role}/{sid}: no wildcard actions"
            assert "*" not in resources, f"{role}/{sid}: no wildcard resource"
    statements = _statements("worker")
    objects = statements["RelayObjectsUnderPrefix"]
    assert set(objects["Action"]) == {
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:PutObjectTagging",
        "s3:GetObjectTagging",
    }
    assert objects["Resource"] == "arn:aws:s3:::YOUR_BUCKET/twilio/*", "objects under the prefix only"
    listing = statements["RelayBucketListing"]
    assert set(listing["Action"]) == {"s3:ListBucket", "s3:ListBucketMultipartUploads"}
    assert listing["Resource"] == "arn:aws:s3:::YOUR_BUCKET"
    # Deliberately unconditioned: HeadBucket carries no s3:prefix, so a prefix condition would deny it, and
    # HeadObject needs ListBucket to answer 404 for a missing key instead of 403.
    assert "Condition" not in listing
    kms = statements["RelaySseKmsKey"]
    assert set(kms["Action"]) == KMS_ACTIONS
    assert kms["Resource"].startswith("arn:aws:kms:") and ":key/" in kms["Resource"]
    assert "kms:ViaService" in kms["Condition"]["StringEquals"]


def test_s3_lifecycle_matches_the_api_model() -> None:
    import botocore.session
    from botocore.validate import validate_parameters

    model = botocore.session.get_session().get_service_model("s3")
    shape = model.operation_model("PutBucketLifecycleConfiguration").input_shape.members["LifecycleConfiguration"]
    validate_parameters(json.loads(_read(DEPLOY / "s3-lifecycle.json")), shape)  # raises on any mistake


def test_s3_lifecycle_rules() -> None:
    rules = {r["Filter"]["Prefix"]: r for r in json.loads(_read(DEPLOY / "s3-lifecycle.json"))["Rules"]}
    assert all(r["Status"] == "Enabled" for r in rules.values())
    assert rules["twilio/"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "Expiration" not in rules["twilio/"], "never expire the day files themselves"
    staging = rules["twilio/_staging/"]
    assert staging["Expiration"] == {"Days": 1}
    assert staging["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}  # no-op unless versioned
    staging_dir = re.search(r'STAGING_DIR = "([^"]+)"', _read(ROOT / "workers" / "sink" / "settings.py"))
    assert staging_dir and f"twilio/{staging_dir.group(1)}" == "twilio/_staging/"
