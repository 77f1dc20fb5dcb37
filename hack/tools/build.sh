#!/usr/bin/env bash
# Builds helm and helm-docs, which the chart's tests run, from pinned Go modules into the cache
# outside the checkout, keyed by a hash of both wrapper modules and the Go version, so a fresh clone
# reuses what an earlier one built. Prints the directory on stdout. Each tool has its own wrapper
# module: helm-docs brings helm v3 and older k8s.io modules, which in one module with helm v4 make
# ambiguous imports; apart, each builds with the dependency set its authors tested.
# Not in hack/kube/go.mod on purpose: changing that module rebuilds the control plane.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${NETWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netwarden}"
if ! command -v go >/dev/null; then
  echo "hack/tools/build.sh: no 'go' on PATH; helm and helm-docs are built from Go modules (install Go and put its bin on PATH)" >&2
  exit 1
fi
declare -A packages=(
  [helm]=helm.sh/helm/v4/cmd/helm
  [helm-docs]=github.com/norwoodj/helm-docs/cmd/helm-docs
)
key="$(cat "$here"/helm/go.mod "$here"/helm/go.sum "$here"/helm-docs/go.mod "$here"/helm-docs/go.sum <(go env GOVERSION) | sha256sum | cut -c1-12)"
out="$cache_root/tools-$key"
mkdir -p "$out"
for name in helm helm-docs; do
  if [[ -x "$out/$name" ]]; then continue; fi
  mod_version="$(awk -v m="${packages[$name]%%/cmd/*}" '$1 == m {print $2; exit}' "$here/$name/go.mod")"
  echo "building $name $mod_version (${packages[$name]}) into $out" >&2
  start=$SECONDS
  ldflags="-s -w"
  # helm reports its version from these variables; without them `helm version` says v4.x-dev.
  if [[ $name == helm ]]; then ldflags+=" -X helm.sh/helm/v4/internal/version.version=$mod_version"; fi
  if [[ $name == helm-docs ]]; then ldflags+=" -X main.version=$mod_version"; fi
  # Build to a temporary name and rename, so an interrupted build never leaves a half binary.
  (cd "$here/$name" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="$ldflags" -o "$out/.$name.tmp" "${packages[$name]}")
  mv "$out/.$name.tmp" "$out/$name"
  echo "built $name in $((SECONDS - start))s" >&2
done
echo "$out"
