"""Lint and consistency checks for the deploy files: Dockerfile, entrypoint, compose, Kubernetes, IAM, lifecycle.

No network and no Docker engine: hadolint and shellcheck run from their pip packages, the Kubernetes
manifests are validated against the schemas bundled in kubernetes-validate, the S3 lifecycle against
botocore's own S3 model, the IAM policy with moto's policy validator. ``docker compose config`` runs only
where the compose plugin is installed (it needs no engine); the compose structure is checked regardless.

Drift is caught both ways: every variable of the environment contract (the ``"NAME"`` literals of
app/config.py) must be documented in deploy/.env.example and present in the Kubernetes ConfigMap or Secret,
and every variable those files, or compose, set must be a contract name, a knob some process reads
(``environ.get`` / ``${NAME}`` in the code, gunicorn config or Procfile), or a variable boto3 reads.
"""

from __future__ import annotations

import fnmatch
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
}
# The contract as documented for operators: app/config.py may add names, but must not lose these.
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
    """Every NAME_WITH_UNDERSCORES string literal in app/config.py: the environment contract."""
    return frozenset(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', _read(ROOT / "app" / "config.py")))


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
    assert not EXPECTED_CONTRACT - contract_names(), "app/config.py lost contract names"


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
    allowed = {"Procfile", "app/", "workers/", "sandbox/", "deploy/gunicorn.conf.py", "deploy/entrypoint.sh"}
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
    for kept_out in (".git/config", ".venv/bin/python", "tests/conftest.py", "deploy/.env", "deploy/.env.example"):
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


def test_compose_services_and_profiles() -> None:
    services = compose()["services"]
    assert set(services) >= {*APP_SERVICES, "redis", "s3", "s3-init", "sandbox"}
    for name in (*APP_SERVICES, "redis"):
        assert "profiles" not in services[name], f"{name} runs without a profile"
    for name in ("s3", "s3-init", "sandbox"):
        assert services[name].get("profiles") == ["local"], name
    images = {services[n]["image"] for n in (*APP_SERVICES, "s3-init", "sandbox")}
    assert len(images) == 1, f"one image for every role: {images}"
    for name in ROLES:
        assert services[name]["command"] == [name]
    for name in APP_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy"
        for local in ("s3-init", "sandbox"):
            assert deps[local]["required"] is False, "local-profile dependencies must be optional"


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


def test_compose_env_files_exist_and_hold_no_inline_secrets() -> None:
    services = compose()["services"]
    for name in (*APP_SERVICES, "s3-init"):
        (entry,) = services[name]["env_file"]
        default = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", entry["path"])
        assert (DEPLOY / default).is_file(), f"{name}: env file {default} (relative to deploy/) is missing"
        inline = [n for n in services[name].get("environment") or {} if looks_secret(n)]
        assert not inline, f"{name}: secrets belong in the env file, not in compose.yaml: {inline}"


def test_compose_environment_names_are_known() -> None:
    services = compose()["services"]
    names = {n for s in (*APP_SERVICES, "s3-init") for n in (services[s].get("environment") or {})}
    assert not unknown_names(names)
    sandbox_env = set(services["sandbox"].get("environment") or {})
    assert sandbox_env <= process_knobs(), sandbox_env - process_knobs()


def test_docker_compose_config() -> None:
    docker = shutil.which("docker")
    probe = docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    if not probe or probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed (it needs no engine where it is)")
    result = subprocess.run(
        [docker, "compose", "-f", "deploy/compose.yaml", "--profile", "local", "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# -- the env example --------------------------------------------------------------------------------------


def test_env_example_documents_every_contract_variable() -> None:
    assigned, commented = parse_env_file(DEPLOY / ".env.example")
    missing = contract_names() - set(assigned) - commented
    assert not missing, f"document these in deploy/.env.example: {sorted(missing)}"
    assert not unknown_names(set(assigned) | commented)


def test_env_example_is_a_valid_configuration() -> None:
    from app.config import load_settings

    assigned, _ = parse_env_file(DEPLOY / ".env.example")
    settings = load_settings(assigned)
    assert settings.webhook_signature == "required"


def _env_sources() -> dict[str, dict[str, str]]:
    sources = {".env.example": parse_env_file(DEPLOY / ".env.example")[0]}
    for name, doc in k8s_docs():
        if doc["kind"] == "ConfigMap":
            sources[f"{name}:{doc['metadata']['name']}"] = doc.get("data") or {}
        if doc["kind"] == "Secret":
            sources[f"{name}:{doc['metadata']['name']}"] = doc.get("stringData") or {}
    for service, spec in compose()["services"].items():
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
        if doc.get("kind") != "Kustomization"
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
    (account,) = service_accounts.values()
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]


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


def test_k8s_environment_matches_the_contract() -> None:
    (config,) = k8s_objects("ConfigMap").values()
    (secret,) = k8s_objects("Secret").values()
    config_names, secret_names = set(config["data"]), set(secret["stringData"])
    assert secret_names == SECRET_NAMES & contract_names(), "secrets go in the Secret"
    assert not [n for n in config_names if looks_secret(n)], "no secret in the ConfigMap"
    missing = contract_names() - config_names - secret_names
    assert not missing, f"add to deploy/k8s/configmap.yaml: {sorted(missing)}"
    inline = {e["name"] for d in k8s_objects("Deployment").values() for c in _containers(d) for e in c.get("env", [])}
    assert not unknown_names(config_names | secret_names | inline)
    for deployment in k8s_objects("Deployment").values():
        (container,) = _containers(deployment)
        refs = {(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()}
        assert refs == {
            ("configMapRef", config["metadata"]["name"]),
            ("secretRef", secret["metadata"]["name"]),
        }


def test_k8s_config_and_example_secret_form_a_valid_configuration() -> None:
    from app.config import load_settings

    (config,) = k8s_objects("ConfigMap").values()
    (secret,) = k8s_objects("Secret").values()
    settings = load_settings({**config["data"], **secret["stringData"]})
    assert settings.webhook_signature == "required"


# -- IAM policy and S3 lifecycle -------------------------------------------------------------------------------

# Every S3 call the sink makes -> the IAM actions it needs. A new call fails the test below until it is here
# (and in deploy/iam-policy.json).
S3_CALL_ACTIONS = {
    "head_object": {"s3:GetObject"},  # plus s3:ListBucket, or a missing key is 403 instead of 404
    "head_bucket": {"s3:ListBucket"},  # /health
    "put_object": {"s3:PutObject"},
    "upload_fileobj": {"s3:PutObject", "s3:AbortMultipartUpload"},  # multipart: Create/UploadPart/Complete
    "copy": {"s3:GetObject", "s3:PutObject"},  # CopyObject / UploadPartCopy from the staging key
    "delete_object": {"s3:DeleteObject"},
    "delete_objects": {"s3:DeleteObject"},
    "abort_multipart_upload": {"s3:AbortMultipartUpload"},
    "list_multipart_uploads": {"s3:ListBucketMultipartUploads"},
    "list_objects_v2": {"s3:ListBucket"},
}


def _policy() -> dict[str, Any]:
    return json.loads(_read(DEPLOY / "iam-policy.json"))


def _statements() -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in _policy()["Statement"]}


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_iam_policy_is_valid() -> None:
    validation = pytest.importorskip("moto.iam.policy_validation")
    validation.IAMPolicyDocumentValidator(_read(DEPLOY / "iam-policy.json")).validate()
    assert _policy()["Version"] == "2012-10-17"


def test_iam_policy_allows_every_s3_call_of_the_sink() -> None:
    source = _read(ROOT / "workers" / "s3_sink.py")
    calls = set(re.findall(r"\bclient\.(\w+)\(", source)) - {"get_paginator"}
    calls |= set(re.findall(r"get_paginator\(\s*[\"'](\w+)[\"']", source))
    unmapped = calls - set(S3_CALL_ACTIONS)
    assert not unmapped, f"new S3 calls in workers/s3_sink.py: map them (and update the policy): {unmapped}"
    allowed = {a for s in _policy()["Statement"] if s["Effect"] == "Allow" for a in _as_list(s["Action"])}
    needed = set().union(*(S3_CALL_ACTIONS[c] for c in calls))
    assert needed <= allowed, needed - allowed


def test_iam_policy_is_least_privilege() -> None:
    statements = _statements()
    for sid, statement in statements.items():
        actions, resources = _as_list(statement["Action"]), _as_list(statement["Resource"])
        assert all("*" not in a for a in actions), f"{sid}: no wildcard actions"
        assert "*" not in resources, f"{sid}: no wildcard resource"
    objects = statements["RelayObjectsUnderPrefix"]
    assert set(objects["Action"]) == {
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    }
    assert objects["Resource"] == "arn:aws:s3:::YOUR_BUCKET/twilio/*", "objects under the prefix only"
    listing = statements["RelayBucketListing"]
    assert set(listing["Action"]) == {"s3:ListBucket", "s3:ListBucketMultipartUploads"}
    assert listing["Resource"] == "arn:aws:s3:::YOUR_BUCKET"
    # Deliberately unconditioned: HeadBucket (/health) carries no s3:prefix, so a prefix condition would
    # deny it, and HeadObject needs ListBucket to answer 404 for a missing key instead of 403.
    assert "Condition" not in listing
    kms = statements["RelaySseKmsKey"]
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
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
    staging_dir = re.search(r'STAGING_DIR = "([^"]+)"', _read(ROOT / "workers" / "s3_sink.py"))
    assert staging_dir and f"twilio/{staging_dir.group(1)}" == "twilio/_staging/"
