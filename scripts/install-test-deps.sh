#!/usr/bin/env bash
# Installs the Debian packages the tests use, only when missing. Safe to run
# again; needs root (CI runs as root) or an already provisioned machine.
set -euo pipefail

# telemetrygen, OpenTelemetry's load generator, from the Go module proxy
# (into $(go env GOPATH)/bin, where the e2e tests look for it), pinned.
telemetrygen_version=v0.161.0
gobin=$(go env GOPATH)/bin
if ! [ -x "$gobin/telemetrygen" ] || ! go version -m "$gobin/telemetrygen" 2>/dev/null | grep -q "telemetrygen[[:space:]]*$telemetrygen_version"; then
  GOBIN=$gobin go install "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@$telemetrygen_version"
fi

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v curl >/dev/null 2>&1 || need+=(curl)
# The dashboard's browser tests drive Debian's chromium (with a font, so
# screenshots show text).
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing test dependencies (${need[*]}); install them as root: apt-get install -y ${need[*]}" >&2
  exit 1
fi

# Debian's packages start their daemons on install; the tests start what they
# need themselves, on ephemeral ports, so keep services from starting.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
command -v promtool >/dev/null
command -v amtool >/dev/null
command -v chromium >/dev/null
