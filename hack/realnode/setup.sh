#!/usr/bin/env bash
# What the real-node e2e suite needs beyond hack/bootstrap.sh, installed or built on demand (only
# that suite calls this, so a unit-test run never pays for it): containerd, runc, the CNI plugins and
# buildah from Debian; kubelet, kube-controller-manager, kube-scheduler and kube-proxy from the
# pinned k8s.io/kubernetes module (hack/kube/build.sh node); CoreDNS (hack/coredns); and two images
# built without a registry: registry.k8s.io/pause:3.10 (a static pause()) and a test image with
# busybox-static and nwprobe (hack/realnode/probe). Everything built lands in the cache, keyed by its
# sources. Prints shell assignments (KUBE_BIN=, COREDNS=, IMAGES=) on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$repo/hack/lib.sh"
cache_root="${NETWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netwarden}"
say() { echo "[realnode setup] $*" >&2; }
for dir in /usr/sbin /sbin; do [[ ":$PATH:" == *":$dir:"* ]] || PATH="$PATH:$dir"; done

packages=(containerd runc containernetworking-plugins buildah busybox-static build-essential)
ensure_debian_packages "${packages[@]}"

kube_bin="$("$repo/hack/kube/build.sh" node)"
coredns="$("$repo/hack/coredns/build.sh")"

busybox_version="$(dpkg-query -W -f='${Version}' busybox-static)"
key="$(cat "$here/pause.c" "$here/probe/go.mod" "$here/probe/main.go" "$here/setup.sh" <(echo "$busybox_version") <(go env GOVERSION) | sha256sum | cut -c1-12)"
images="$cache_root/realnode-images-$key"
if [[ ! -f "$images/probe.tar" ]]; then
  say "building images into $images"
  start=$SECONDS
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/pause" "$work/probe/bin" "$images"
  gcc -static -O2 -o "$work/pause/pause" "$here/pause.c"
  (cd "$here/probe" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="-s -w" -o "$work/probe/bin/nwprobe" .)
  cp /bin/busybox "$work/probe/bin/busybox"
  for applet in sh cat echo id ls sleep hostname ps wget; do ln -s busybox "$work/probe/bin/$applet"; done
  bah=(buildah --storage-driver vfs --root "$work/root" --runroot "$work/runroot")
  # image NAME CMD-JSON DIR USER: a FROM scratch image holding DIR, written as a docker-archive tar.
  image() {
    local c; c="$("${bah[@]}" from scratch)"
    "${bah[@]}" copy "$c" "$3" / >/dev/null
    "${bah[@]}" config --entrypoint "$2" --user "$4" --env PATH=/bin "$c"
    "${bah[@]}" commit --quiet --timestamp 0 "$c" "$1" >/dev/null
    "${bah[@]}" push --quiet "$1" "docker-archive:$work/$5.tar:$1"
    mv "$work/$5.tar" "$images/$5.tar"
  }
  image registry.k8s.io/pause:3.10 '["/pause"]' "$work/pause" 65535:65535 pause
  image localhost/netwarden-probe:test '["/bin/nwprobe"]' "$work/probe" 0:0 probe
  say "built images in $((SECONDS - start))s"
fi
echo "KUBE_BIN=$kube_bin"
echo "COREDNS=$coredns"
echo "IMAGES=$images"
