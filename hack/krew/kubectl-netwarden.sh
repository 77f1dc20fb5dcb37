#!/bin/sh
# kubectl-netwarden as the krew archive ships it: runs the bundled plugin (kubectl-netwarden.mjs,
# next to this file) with the Node.js on PATH. krew links this file into ~/.krew/bin, so the
# link is followed to find the bundle.
set -e
self=$0
while [ -L "$self" ]; do
  link=$(readlink "$self")
  case $link in
    /*) self=$link ;;
    *) self=$(dirname "$self")/$link ;;
  esac
done
dir=$(cd "$(dirname "$self")" && pwd)
if ! command -v node >/dev/null 2>&1; then
  echo "kubectl-netwarden: needs Node.js 22.19 or newer on PATH (https://nodejs.org)" >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 19) ? 0 : 1)'; then
  echo "kubectl-netwarden: needs Node.js 22.19 or newer, found $(node --version)" >&2
  exit 1
fi
exec node "$dir/kubectl-netwarden.mjs" "$@"
