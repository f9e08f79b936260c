#!/bin/sh
# Container entrypoint for bulkexport-relay: one image, the first argument picks the process type.
#
#   web | worker | poller   the command on that line of the Procfile (read at start, so the image and the
#                           Procfile never drift): gunicorn, rq worker, rq cron
#   sandbox                 the local Twilio BulkExports sandbox: API on $SANDBOX_PORT (8080), files on
#                           $SANDBOX_FILES_PORT (8081); SANDBOX_PUBLIC_HOST is the host name it puts in URLs
#   anything else           run as given (`flask --app app relay --help`, `sh`, ...)
#
# Arguments after a role are appended to its command. The command is exec'd: it becomes PID 1 and gets
# SIGTERM itself (gunicorn: graceful stop; rq worker: warm shutdown, the job in hand finishes; rq cron: stop).
set -eu

procfile=${RELAY_PROCFILE:-/app/Procfile}

[ "$#" -gt 0 ] || set -- web
role=$1

case "$role" in
    web | worker | poller)
        shift
        # The Procfile's paths (deploy/gunicorn.conf.py, workers/cron_config.py) are relative to its folder.
        cd "$(dirname "$procfile")"
        cmd=$(sed -n "s/^${role}:[[:space:]]*//p" "$procfile" | head -n 1)
        if [ -z "$cmd" ]; then
            echo "entrypoint: no '${role}:' line in ${procfile}" >&2
            exit 64
        fi
        if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
            if [ "$role" = web ]; then
                # /tmp is an emptyDir/tmpfs in Kubernetes and compose: the directory baked into the image is
                # hidden, so make it (gunicorn clears its *.db files at start).
                mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
            else
                # Only web serves /metrics (worker and poller counters go to Redis, app/platform/metrics.py) and
                # nothing scrapes a worker or poller container: keep their client in-process, no files.
                unset PROMETHEUS_MULTIPROC_DIR
            fi
        fi
        # The line is shell, as a Procfile runner treats it: quotes and ${VAR:-default} expand here. Extra
        # arguments follow it, quoted.
        eval "exec ${cmd} \"\$@\""
        ;;
    sandbox)
        shift
        cd "$(dirname "$procfile")"
        exec python -m sandbox --host 0.0.0.0 --port "${SANDBOX_PORT:-8080}" \
            --files-port "${SANDBOX_FILES_PORT:-8081}" "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
