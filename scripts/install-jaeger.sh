#!/usr/bin/env bash
# Jaeger v2 (an OpenTelemetry-collector-based tracing backend) for the tracing e2e test, built from
# its Go module into .tools/jaeger/jaeger. Jaeger v2 ships no PyPI wheel or npm package, and its
# release archives are not on the registries this project installs from; the Go module proxy is.
# The build takes minutes on 2 cores, so the binary is kept in a cache outside the repository
# (INFERENCE_GUARD_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/inference-guard) keyed by version: a
# fresh clone, or a wiped .tools/, copies it in a second.
set -euo pipefail
cd "$(dirname "$0")/.."
# The module's v1.x tags carry Jaeger v2 in cmd/jaeger; later versions are not the tested ones.
version="v1.75.0"
bin=".tools/jaeger/jaeger"
stamp=".tools/jaeger/.version"
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then exit 0; fi
cache="${INFERENCE_GUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-guard}/jaeger/$version"
if [ ! -x "$cache/jaeger" ]; then
  echo "building Jaeger v2 ($version) once into $cache (10-20 minutes on 2 cores)" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    go mod init inference-guard/jaeger-build >/dev/null 2>&1
    go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$version" >&2
    CGO_ENABLED=0 nice -n 10 go build -trimpath -o jaeger github.com/jaegertracing/jaeger/cmd/jaeger >&2
  )
  mkdir -p "$cache"
  # Renamed into place: an interrupted build never leaves a half-written binary under the cache key.
  mv "$work/jaeger" "$cache/jaeger.partial"
  mv "$cache/jaeger.partial" "$cache/jaeger"
fi
mkdir -p .tools/jaeger
cp "$cache/jaeger" "$bin"
echo "$version" > "$stamp"
