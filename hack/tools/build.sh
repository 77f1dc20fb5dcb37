#!/usr/bin/env bash
# Builds the Go tools the chart's tests run from pinned Go modules into the cache outside the
# checkout: helm and helm-docs, and with --with-promtool also promtool (for `promtool check rules`
# and `promtool test rules` of the PrometheusRule). Each tool has its own wrapper module here
# (helm-docs brings helm v3 and older k8s.io modules, which beside helm v4 in one module make
# ambiguous imports) and its own cache directory, keyed by its module's version, go.mod, go.sum and
# the Go version, so a change to one rebuilds only that one. Prints a directory of links to them.
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
  [promtool]=github.com/prometheus/prometheus/cmd/promtool
)
tools=(helm helm-docs)
if [[ "${1:-}" == --with-promtool ]]; then tools+=(promtool); fi
go_version="$(go env GOVERSION)"
dirs=()
for name in "${tools[@]}"; do
  mod="${packages[$name]%%/cmd/*}"
  version="$(awk -v m="$mod" '$1 == m {print $2; exit}' "$here/$name/go.mod")"
  key="$(cat "$here/$name/go.mod" "$here/$name/go.sum" <(echo "$go_version") | sha256sum | cut -c1-12)"
  out="$cache_root/$name-$version-$key"
  dirs+=("$out")
  if [[ -x "$out/$name" ]]; then continue; fi
  mkdir -p "$out"
  echo "building $name $version (${packages[$name]}) into $out" >&2
  start=$SECONDS
  ldflags="-s -w"
  # The version each reports; without these helm says v4.3 and helm-docs nothing.
  case "$name" in
    helm) ldflags+=" -X helm.sh/helm/v4/internal/version.version=$version" ;;
    helm-docs) ldflags+=" -X main.version=${version#v}" ;;
    # Prometheus 3.16.0 is the Go module v0.316.0.
    promtool) v="${version#v0.}"; m="${v%%.*}"; ldflags+=" -X github.com/prometheus/common/version.Version=${m:0:1}.${m:1}.${v#*.}" ;;
  esac
  # Build to a temporary name and rename, so an interrupted build never leaves a half binary.
  (cd "$here/$name" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="$ldflags" -o "$out/.$name.tmp" "${packages[$name]}")
  mv "$out/.$name.tmp" "$out/$name"
  echo "built $name in $((SECONDS - start))s" >&2
done
# One directory for PATH: links to the tools built above, named by the set of their directories.
bin="$cache_root/tools-$(printf '%s\n' "${dirs[@]}" | sha256sum | cut -c1-12)"
if [[ ! -d "$bin" ]]; then
  mkdir -p "$bin.tmp.$$"
  for i in "${!tools[@]}"; do ln -sfn "${dirs[$i]}/${tools[$i]}" "$bin.tmp.$$/${tools[$i]}"; done
  mv -T "$bin.tmp.$$" "$bin" 2>/dev/null || rm -rf "$bin.tmp.$$"
fi
echo "$bin"
