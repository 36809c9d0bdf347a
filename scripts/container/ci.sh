#!/usr/bin/env bash
# Builds the image and runs the commands of docs/operations.md, "In a container", as they are
# written (`docker` is podman here): the blocks that follow a `<!-- run by scripts/container/ci.sh -->`
# line. The base image is made from Debian's packages and the npm registry (make-base.sh), since no
# container registry is reachable; it is kept in the engine's storage and made again only when
# missing.
#
# Prints one `container: SKIPPED …` line and exits 0 when no engine can be installed or it cannot
# start a container on this machine; fails when the engine runs and the image does not build or the
# commands fail.
set -euo pipefail
cd "$(dirname "$0")/../.."

base=${APPTUNNEL_BASE_IMAGE:-localhost/apptunnel-node-base:22}
CONTAINERS_CONF=$PWD/scripts/container/containers.conf
export CONTAINERS_CONF
started=$SECONDS
skip() {
  echo "container: SKIPPED: $*"
  exit 0
}

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v runc >/dev/null 2>&1 || need+=(runc)
if [ ${#need[@]} -gt 0 ]; then
  { timeout 120 apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
      "${need[@]}" conmon netavark aardvark-dns iptables >/dev/null; } ||
    skip "apt-get install ${need[*]} failed"
fi
podman info >/dev/null 2>&1 || skip "podman info fails: $(podman info 2>&1 | tail -n 1)"

if ! podman image exists "$base"; then
  timeout 900 scripts/container/make-base.sh "$base"
fi
# The engine itself: a container from the base must start, or nothing below can run here.
podman run --rm --network none "$base" node --version >/dev/null 2>&1 ||
  skip "podman cannot start a container here: $(podman run --rm --network none "$base" true 2>&1 | tail -n 1)"

# `docker` in the documented commands: podman, with the local base and the host's network for the
# build (the build stage reaches the npm registry and Debian's archive like this machine does), in
# Docker's image format (OCI images have no HEALTHCHECK).
# npm in the build trusts the certificate authorities this machine trusts (its egress may present
# its own), through npm's global config file, mounted for the build's RUN steps only.
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
npmrc=$(mktemp)
printf 'cafile=/usr/local/etc/build-ca.pem\n' >"$npmrc"
docker() {
  if [ "$1" = build ]; then
    shift
    podman build --format docker --network host --build-arg "NODE_IMAGE=$base" \
      -v "$ca:/usr/local/etc/build-ca.pem:ro" -v "$npmrc:/usr/local/etc/npmrc:ro" "$@"
  elif [ "$1" = stop ]; then
    # Without systemd podman runs no health check by itself: run the image's HEALTHCHECK once,
    # against the running server, before each documented stop.
    podman healthcheck run "${!#}"
    podman "$@"
  else
    podman "$@"
  fi
}
cleanup() {
  podman rm -f -t 0 apptunnel >/dev/null 2>&1 || true
  podman volume rm -f apptunnel-data >/dev/null 2>&1 || true
}
trap 'cleanup; rm -f "$npmrc"' EXIT
cleanup

blocks=$(awk '
  /<!-- run by scripts\/container\/ci.sh -->/ { want = 1; next }
  want && /^```sh$/ { inside = 1; next }
  inside && /^```$/ { inside = 0; want = 0; print ""; next }
  inside { print }
' docs/operations.md)
[ -n "$blocks" ] || { echo "container: no block of docs/operations.md is marked to run" >&2; exit 1; }

echo "container: running the documented commands (docs/operations.md, In a container)"
# Each documented command is echoed and must succeed; the whole is bounded in time.
set -x
eval "$blocks"
set +x

# What the documented run promises, checked on the container it left behind.
[ "$(podman image inspect apptunnel --format '{{.Config.User}}')" = node ]
podman inspect apptunnel --format '{{.HostConfig.ReadonlyRootfs}}' | grep -qx true
echo "container: passed in $((SECONDS - started)) s"
