#!/usr/bin/env bash
# Installs the Deno runtime the Deno tests use into .services/deno (from the npm registry), once.
# Kept out of package.json: the deno package's optional per-platform binaries are not all served
# by every registry mirror, and `npm ci` insists on every one of them being in the lockfile.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="${DENO_VERSION:-2.9.6}"
dir="$root/.services/deno"
bin="$dir/node_modules/.bin/deno"
if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -q "^deno $version "; then
  echo "deno: $version present"
  exit 0
fi
echo "deno: installing $version…"
mkdir -p "$dir"
npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "deno@$version" >/dev/null
"$bin" --version | head -n 1
