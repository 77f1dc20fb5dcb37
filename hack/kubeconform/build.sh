#!/usr/bin/env bash
# Builds kubeconform (github.com/yannh/kubeconform, pinned in hack/kubeconform/go.mod) into the
# cache outside the checkout, keyed by a hash of go.mod, go.sum and the Go version, so a test
# validates examples/ with schemas/ the way users do. Prints the binary's path on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${NETWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netwarden}"
key="$(cat "$here/go.mod" "$here/go.sum" <(go env GOVERSION) | sha256sum | cut -c1-12)"
out="$cache_root/kubeconform-$key"
mkdir -p "$out"
if [[ ! -x "$out/kubeconform" ]]; then
  echo "building kubeconform into $out" >&2
  cd "$here"
  # Build to a temporary name and rename, so an interrupted build never leaves a half binary.
  CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="-s -w" -o "$out/.kubeconform.tmp" github.com/yannh/kubeconform/cmd/kubeconform
  mv "$out/.kubeconform.tmp" "$out/kubeconform"
fi
echo "$out/kubeconform"
