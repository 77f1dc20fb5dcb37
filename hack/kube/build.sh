#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the pinned Go modules in this directory into a cache
# outside the checkout, keyed by the Kubernetes version and a hash of go.mod/go.sum and the Go
# version, so a fresh clone reuses what an earlier clone built. Prints the directory on stdout.
# `build.sh node` also builds what a real node needs (kubelet, kube-controller-manager,
# kube-scheduler, kube-proxy) from the same k8s.io/kubernetes module: only the real-node suite asks
# for them, so a unit-test run never pays for their build.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${NETWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netwarden}"
if ! command -v go >/dev/null; then
  echo "hack/kube/build.sh: no 'go' on PATH; the control plane is built from Go modules (install Go, e.g. into /usr/local/go, and put its bin on PATH)" >&2
  exit 1
fi
kube_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$here/go.mod")"
key="$(cat "$here/go.mod" "$here/go.sum" <(go env GOVERSION) | sha256sum | cut -c1-12)"
out="$cache_root/kube-$kube_version-$key"
declare -A packages=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [etcd]=go.etcd.io/etcd/server/v3
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
)
names=(kube-apiserver kubectl etcd)
if [[ "${1:-}" == node ]]; then names+=(kubelet kube-controller-manager kube-scheduler kube-proxy); fi
# Without these the binaries report v0.0.0 and kubectl warns about version skew.
minor="${kube_version#v1.}"; minor="${minor%%.*}"
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  version_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p "$out"
cd "$here"
for name in "${names[@]}"; do
  if [[ -x "$out/$name" ]]; then continue; fi
  echo "building $name (${packages[$name]}) into $out" >&2
  start=$SECONDS
  # Build to a temporary name and rename, so an interrupted build never leaves a half binary.
  CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="-s -w $version_flags" -o "$out/.$name.tmp" "${packages[$name]}"
  mv "$out/.$name.tmp" "$out/$name"
  echo "built $name in $((SECONDS - start))s" >&2
done
echo "$out"
