#!/usr/bin/env bash
# Builds the test S3 server (hack/s3/main.go, gofakes3) into the cache outside the checkout, keyed
# by a hash of the sources and the Go version. Prints the binary's path on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${NETWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netwarden}"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" <(go env GOVERSION) | sha256sum | cut -c1-12)"
out="$cache_root/s3-$key"
mkdir -p "$out"
if [[ ! -x "$out/s3server" ]]; then
  echo "building s3server into $out" >&2
  cd "$here"
  # Build to a temporary name and rename, so an interrupted build never leaves a half binary.
  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/.s3server.tmp" .
  mv "$out/.s3server.tmp" "$out/s3server"
fi
echo "$out/s3server"
