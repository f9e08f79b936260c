#!/usr/bin/env bash
# Build the container image WITHOUT a Docker engine and run every role from it against the local stack.
#
#   deploy/image-check.sh                      build this checkout's image and check it (`make image-check`)
#   deploy/image-check.sh --context DIR        the same, with DIR as the build context (a copy of the repo)
#   deploy/image-check.sh --broken-dockerfile [DIR]
#                                              build from a copy of DIR (default: this checkout) whose Dockerfile
#                                              lacks `COPY workers/ workers/`; succeed only if the check FAILS,
#                                              because the worker role cannot start (proves the check can fail)
#
# Needs root and Debian's buildah, podman and debootstrap (apt-get install -y buildah podman debootstrap), and
# the project's .venv (make venv). Steps:
#   1. a stand-in for python:3.11-slim-bookworm (no image registry is reachable here): debootstrap minbase with
#      python3, python3-venv, python-is-python3, ca-certificates, the machine's CA bundle copied in (the build's
#      pip must trust what this machine trusts); kept as a tarball under $IMAGE_CHECK_CACHE, keyed by the package
#      list, suite, mirror and CA bundle, so later runs skip debootstrap (~45 s);
#   2. `podman import` of it, and `buildah build --isolation chroot` of the Dockerfile with
#      PYTHON_IMAGE=<stand-in>, in a private vfs storage under a temporary directory (removed at the end);
#   3. `buildah from` + `buildah mount` of the image, then deploy/image_check.py runs web, worker, poller, the
#      sandbox role and `flask --app app relay --help` from that root filesystem (see `rootfs-exec` below) against
#      Redis, S3 and the Twilio sandbox on 127.0.0.1, and checks them (its docstring lists the checks).
# Prints the image size and the time of each step. Exit status: 0 = check passed (--broken-dockerfile: failed
# as it must), non-zero otherwise.
#
# Environment: IMAGE_CHECK_CACHE (default /var/cache/bulkexport-relay/image-check; empty = no cache),
# IMAGE_CHECK_MIRROR (default http://deb.debian.org/debian), IMAGE_CHECK_KEEP=1 keeps the work directory (logs,
# build log) even after a pass, =0 never (it is kept after a failure by default).
#
# Internal: `deploy/image-check.sh rootfs-exec ROOTFS UID:GID WORKDIR FILES_DIR -- CMD...` runs CMD the way an
# engine would run `--read-only --tmpfs /tmp --user UID:GID -w WORKDIR`: in a private mount namespace, ROOTFS
# bind-mounted read-only with a fresh tmpfs /tmp (FILES_DIR's files copied to /tmp/check/), /dev (null, zero,
# full, random, urandom, tty, shm) and /proc, then chroot as UID:GID. The environment is passed through as
# given, and the network namespace is the host's. Every step execs, so CMD keeps this script's PID.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
IMAGE=localhost/bulkexport-relay:image-check
BASE_IMAGE=localhost/bulkexport-relay-standin-base:$SUITE
MIRROR=${IMAGE_CHECK_MIRROR:-http://deb.debian.org/debian}
CACHE=${IMAGE_CHECK_CACHE-/var/cache/bulkexport-relay/image-check}

say() { printf 'image-check: %s\n' "$*"; }
die() { printf 'image-check: FAILED: %s\n' "$*" >&2; exit 1; }

# ---- rootfs-exec: one process of the image, as a container engine would start it -------------------------------

rootfs_exec() {
    [ "$#" -ge 6 ] && [ "$5" = -- ] || die "usage: $0 rootfs-exec ROOTFS UID:GID WORKDIR FILES_DIR -- CMD..."
    # A private mount namespace: every mount below disappears with the process, nothing to clean up.
    exec unshare --mount --propagation private -- bash "${BASH_SOURCE[0]}" rootfs-exec-in-namespace "$@"
}

rootfs_exec_in_namespace() {
    local root=$1 user=$2 workdir=$3 files=$4 node
    shift 5
    mount --bind "$root" "$root"
    mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/tmp"
    mount -t tmpfs -o nosuid,mode=0755 tmpfs "$root/dev"
    for node in null zero full random urandom tty; do
        : >"$root/dev/$node"
        mount --bind "/dev/$node" "$root/dev/$node"
    done
    mkdir "$root/dev/shm"
    mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/dev/shm"
    ln -s /proc/self/fd "$root/dev/fd"
    mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
    mkdir -m 0755 "$root/tmp/check"
    cp -R "$files/." "$root/tmp/check/"
    chmod -R a+rX "$root/tmp/check"
    mount -o remount,bind,ro "$root"
    exec chroot --userspec="$user" "$root" /usr/bin/env -C "$workdir" "$@"
}

# ---- the check ---------------------------------------------------------------------------------------------------

preflight() {
    [ "$(id -u)" = 0 ] || die "run as root (buildah/podman with vfs storage, mounts and chroot need it)"
    local missing=() tool
    for tool in buildah podman debootstrap unshare chroot mount numfmt; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [ "${#missing[@]}" = 0 ] || die "missing ${missing[*]}: apt-get install -y buildah podman debootstrap"
    [ -x "$REPO/.venv/bin/python" ] || die "no $REPO/.venv: run make venv first"
    [ -r "$HOST_CA_BUNDLE" ] || die "no CA bundle at $HOST_CA_BUNDLE (install ca-certificates)"
}

# Where the stand-in base tarball is cached: one file per package list, suite, mirror and CA bundle.
base_tarball_name() {
    local key
    key=$(printf '%s\n' "$SUITE" "$BASE_PACKAGES" "$MIRROR" "$(sha256sum <"$HOST_CA_BUNDLE")" | sha256sum)
    printf 'standin-base-%s-%s.tar' "$SUITE" "${key:0:16}"
}

make_base_tarball() {
    local out=$1 rootfs="$WORK/base-rootfs"
    say "debootstrap --variant=minbase $SUITE ($BASE_PACKAGES) from $MIRROR"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$MIRROR" \
        >"$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    cp "$HOST_CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    tar -C "$rootfs" --numeric-owner -cf "$out.partial" .
    mv "$out.partial" "$out"
    rm -rf "$rootfs"
}

base_tarball() {
    local name tarball
    name=$(base_tarball_name)
    if [ -n "$CACHE" ] && [ -s "$CACHE/$name" ]; then
        say "stand-in base: cached $CACHE/$name"
        printf '%s\n' "$CACHE/$name" >"$WORK/base-path"
        return
    fi
    if [ -n "$CACHE" ]; then
        mkdir -p "$CACHE"
        rm -f "$CACHE"/standin-base-*.tar  # an older key: the package list, mirror or CAs changed
        tarball=$CACHE/$name
    else
        tarball=$WORK/$name
    fi
    make_base_tarball "$tarball"
    printf '%s\n' "$tarball" >"$WORK/base-path"
}

build_image() {
    local context=$1
    podman "${STORAGE[@]}" import --quiet "$(cat "$WORK/base-path")" "$BASE_IMAGE" >/dev/null
    say "buildah build --isolation chroot (context $context; log $WORK/build.log)"
    buildah "${STORAGE[@]}" build --isolation chroot --pull=never --format docker \
        --build-arg "PYTHON_IMAGE=$BASE_IMAGE" --file "$context/Dockerfile" --tag "$IMAGE" "$context" \
        >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; die "the image did not build"; }
}

print_size() {
    local image base
    image=$(podman "${STORAGE[@]}" image inspect --format '{{.Size}}' "$IMAGE")
    base=$(podman "${STORAGE[@]}" image inspect --format '{{.Size}}' "$BASE_IMAGE")
    say "image size: $(numfmt --to=si --suffix=B "$image") ($image bytes); the stand-in base is" \
        "$(numfmt --to=si --suffix=B "$base"), so the relay's layers add $(numfmt --to=si --suffix=B $((image - base)))"
}

run_roles() {
    local ctr rootfs
    ctr=$(buildah "${STORAGE[@]}" from --pull=never --quiet "$IMAGE")
    rootfs=$(buildah "${STORAGE[@]}" mount "$ctr")
    podman "${STORAGE[@]}" image inspect --format '{{json .Config}}' "$IMAGE" >"$WORK/image-config.json"
    PYTHONPATH=$REPO "$REPO/.venv/bin/python" "$REPO/deploy/image_check.py" --rootfs "$rootfs" \
        --config "$WORK/image-config.json" --rootfs-exec "$REPO/deploy/image-check.sh" --workdir "$WORK/run"
}

cleanup() {
    local status=$?
    if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
        buildah "${STORAGE[@]}" rm --all >/dev/null 2>&1 || true
        rm -rf "$WORK/storage" "$WORK/runroot" "$WORK/base-rootfs"
        # Kept: always with IMAGE_CHECK_KEEP=1, never with 0, else after a failure.
        if [ "${IMAGE_CHECK_KEEP:-}" = 1 ] || { [ "$status" != 0 ] && [ "${IMAGE_CHECK_KEEP:-}" != 0 ]; }; then
            say "logs kept in $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
}

check() {
    local context=$1 t0=$SECONDS t
    preflight
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/image-check.XXXXXX")
    STORAGE=(--root "$WORK/storage" --runroot "$WORK/runroot" --storage-driver vfs)
    trap cleanup EXIT
    t=$SECONDS
    base_tarball
    local t_base=$((SECONDS - t))
    t=$SECONDS
    build_image "$context"
    local t_build=$((SECONDS - t))
    print_size
    t=$SECONDS
    run_roles
    say "timings: stand-in base ${t_base}s, build ${t_build}s, run $((SECONDS - t))s, total $((SECONDS - t0))s"
    say "PASSED"
}

broken_dockerfile() {
    local source=$1 copy status=0
    copy=$(mktemp -d "${TMPDIR:-/tmp}/image-check-broken.XXXXXX")
    # The build context only: what .dockerignore lets in, plus the Dockerfile.
    tar -C "$source" -cf - Dockerfile .dockerignore requirements.txt Procfile pyproject.toml app workers sandbox \
        deploy/gunicorn.conf.py deploy/entrypoint.sh | tar -C "$copy" -xf -
    sed -i '/^COPY workers\/ workers\/$/d' "$copy/Dockerfile"
    if cmp -s "$source/Dockerfile" "$copy/Dockerfile"; then
        rm -rf "$copy"
        die "the Dockerfile has no 'COPY workers/ workers/' line to remove: update --broken-dockerfile"
    fi
    say "--broken-dockerfile: building without 'COPY workers/ workers/'; the check below must fail"
    # A separate bash (`set -e` does not apply in a function called left of `||`), its output kept to see why
    # it failed: for the missing package, not for something else.
    IMAGE_CHECK_KEEP=${IMAGE_CHECK_KEEP:-0} bash "${BASH_SOURCE[0]}" --context "$copy" 2>&1 | tee "$copy.log" ||
        status=$?
    rm -rf "$copy"
    if [ "$status" = 0 ]; then
        rm -f "$copy.log"
        die "the check PASSED on a Dockerfile without 'COPY workers/ workers/': it cannot catch a broken image"
    fi
    if ! grep -q "roles start: worker exited with code" "$copy.log"; then
        rm -f "$copy.log"
        die "the check failed (exit $status), but not because the worker could not start: see its output above"
    fi
    rm -f "$copy.log"
    say "--broken-dockerfile: the check failed (exit $status): the worker role did not start, as it must not: PASSED"
}

case "${1:-}" in
    rootfs-exec) shift; rootfs_exec "$@" ;;
    rootfs-exec-in-namespace) shift; rootfs_exec_in_namespace "$@" ;;
    --broken-dockerfile) broken_dockerfile "$(cd "${2:-$REPO}" && pwd)" ;;
    --context) [ -d "${2:-}" ] || die "--context needs a directory"; check "$(cd "$2" && pwd)" ;;
    "") check "$REPO" ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
esac
