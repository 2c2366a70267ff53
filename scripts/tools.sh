#!/usr/bin/env bash
# Installs what the test suite needs beyond Go, gcc, Node/npm and PostgreSQL's
# binaries (all present on a fresh machine): newman (npm) for Intel's Postman
# suites and openssl (Debian) as the independent TLS-PSK peer. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
NEWMAN_VERSION=6.2.2

if [ ! -x .tools/node_modules/.bin/newman ]; then
  echo "tools: installing newman@$NEWMAN_VERSION into .tools/" >&2
  npm install --prefix .tools --no-audit --no-fund --loglevel=error "newman@$NEWMAN_VERSION" >&2
fi

if ! command -v openssl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tools: installing openssl (Debian package)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >&2; }
  else
    echo "tools: openssl is missing; install it (apt-get install openssl)" >&2
    exit 1
  fi
fi
