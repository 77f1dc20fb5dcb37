#!/usr/bin/env bash
# Builds the real-node test environment's cluster DNS (hack/coredns/main.go: CoreDNS with the
# kubernetes plugin) into the cache outside the checkout, keyed by a hash of the sources and the Go
# version. Prints the binary's path on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${NETWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netwarden}"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" <(go env GOVERSION) | sha256sum | cut -c1-12)"
out="$cache_root/coredns-$key"
mkdir -p "$out"
if [[ ! -x "$out/coredns" ]]; then
  echo "building coredns into $out" >&2
  start=$SECONDS
  cd "$here"
  # Build to a temporary name and rename, so an interrupted build never leaves a half binary.
  CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="-s -w" -o "$out/.coredns.tmp" .
  mv "$out/.coredns.tmp" "$out/coredns"
  echo "built coredns in $((SECONDS - start))s" >&2
fi
echo "$out/coredns"
