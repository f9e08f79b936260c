# syntax=docker/dockerfile:1
#
# One image for every process type of bulkexport-relay. The first argument picks the role
# (deploy/entrypoint.sh): web (default) | worker | poller | sandbox | any other command, run as given.
#
#   docker build -t bulkexport-relay .
#   docker run --rm -p 8000:8000 --env-file deploy/.env bulkexport-relay web
#   docker run --rm --no-healthcheck --env-file deploy/.env bulkexport-relay worker
#   sudo make image-check       # no engine here: build with buildah and run every role (deploy/README.md)
#
# The base image is pinned by tag only; pin it by digest where you build (deploy/README.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: the pinned runtime requirements in a virtualenv (wheels only; no compiler needed) ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt

# ---- runtime: the venv, the code, a non-root user; nothing from requirements-dev.txt ----
FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it. /tmp/prometheus is where the web's
# gunicorn keeps the Prometheus multiprocess files (wiped at start, see deploy/gunicorn.conf.py).
RUN groupadd --system --gid "${APP_UID}" relay \
    && useradd --system --uid "${APP_UID}" --gid relay --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin relay \
    && install -d -o relay -g relay -m 0755 /tmp/prometheus
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    PORT=8000
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Only what runs: the code, the gunicorn settings, the entrypoint and the Procfile it reads the commands from.
# Owned by root and read-only for the app user.
COPY Procfile pyproject.toml ./
COPY deploy/gunicorn.conf.py deploy/entrypoint.sh deploy/
COPY app/ app/
COPY workers/ workers/
COPY sandbox/ sandbox/
RUN chmod -R a+rX,go-w /app \
    && chmod 0755 /app/deploy/entrypoint.sh \
    && python -m compileall -q app workers sandbox deploy
USER 10001:10001
EXPOSE 8000
# The web's liveness (no dependencies checked). Worker, poller and sandbox containers serve no /livez:
# run them with --no-healthcheck or override it (deploy/compose.yaml does). Kubernetes ignores HEALTHCHECK.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/livez' % os.environ.get('PORT', '8000'), timeout=4)"]
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["web"]
