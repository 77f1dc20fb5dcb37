#!/usr/bin/env bash
# Builds krew (sigs.k8s.io/krew, pinned in hack/krew/go.mod) into the cache outside the checkout,
# keyed by a hash of go.mod, go.sum and the Go version, so the test of the krew package installs it
# with krew itself. Prints the binary's path on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${NETWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netwarden}"
key="$(cat "$here/go.mod" "$here/go.sum" <(go env GOVERSION) | sha256sum | cut -c1-12)"
out="$cache_root/krew-$key"
mkdir -p "$out"
if [[ ! -x "$out/krew" ]]; then
  echo "building krew into $out" >&2
  cd "$here"
  # Build to a temporary name and rename, so an interrupted build never leaves a half binary.
  CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="-s -w" -o "$out/.krew.tmp" sigs.k8s.io/krew/cmd/krew
  mv "$out/.krew.tmp" "$out/krew"
fi
echo "$out/krew"
