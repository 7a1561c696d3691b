#!/usr/bin/env bash
# The official OpenAI Python SDK (PyPI `openai`) into .tools/openai-python, for the end-to-end tests
# that stream through Envoy and the guard as a Python user would. Run a client as:
#   PYTHONPATH=.tools/openai-python python3 test/e2e/clients/openai_stream.py ...
set -euo pipefail
cd "$(dirname "$0")/.."
version="3.63.0"
target=".tools/openai-python"
if [ -f "$target/.version" ] && [ "$(cat "$target/.version")" = "$version" ]; then exit 0; fi
echo "installing openai==$version from PyPI into $target" >&2
rm -rf "$target"
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --target "$target" "openai==$version" >&2
echo "$version" > "$target/.version"
