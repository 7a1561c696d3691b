#!/usr/bin/env bash
# kubernetes-validate (PyPI; ships the Kubernetes JSON schemas, so it validates offline) into
# .tools/kubernetes-validate, for the deployment manifest tests. Run it as:
#   PYTHONPATH=.tools/kubernetes-validate python3 -m kubernetes_validate --strict FILE...
set -euo pipefail
cd "$(dirname "$0")/.."
version="1.37.0"
target=".tools/kubernetes-validate"
if [ -f "$target/.version" ] && [ "$(cat "$target/.version")" = "$version" ]; then exit 0; fi
echo "installing kubernetes-validate==$version from PyPI into $target" >&2
rm -rf "$target"
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --target "$target" "kubernetes-validate==$version" >&2
echo "$version" > "$target/.version"
