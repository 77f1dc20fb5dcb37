#!/usr/bin/env bash
# Compiles the kernel drop source's eBPF program (src/nodeagent/drops/kernel/droptail.bpf.c) with
# clang against a vmlinux.h that bpftool dumps from this machine's kernel BTF. The object is CO-RE:
# libbpf relocates its struct sk_buff field offsets to whatever kernel loads it, so it is built
# once per source and toolchain, not per node. Prints the object's path; with OUT=path it writes
# there instead of the cache (the image's build stage).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$repo/src/nodeagent/drops/kernel/droptail.bpf.c"
btf="${VMLINUX_BTF:-/sys/kernel/btf/vmlinux}"
if [[ ! -r "$btf" ]]; then
  echo "[bpf] $btf is missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF), so vmlinux.h cannot be generated here" >&2
  exit 1
fi
for tool in clang llvm-strip bpftool; do
  command -v "$tool" >/dev/null || { echo "[bpf] $tool not found (Debian packages clang, llvm, bpftool)" >&2; exit 1; }
done
arch="$(uname -m)"
case "$arch" in x86_64) target=x86 ;; aarch64) target=arm64 ;; *) target="$arch" ;; esac

cache_root="${NETWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netwarden}"
key="$(cat "$src" "$0" <(clang --version) <(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null) "$btf" | sha256sum | cut -c1-12)"
out="${OUT:-$cache_root/bpf-$key/droptail.bpf.o}"
if [[ -n "${OUT:-}" || ! -f "$out" ]]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  bpftool btf dump file "$btf" format c > "$work/vmlinux.h"
  # -g emits the BTF that CO-RE needs; llvm-strip -g then drops the DWARF and keeps .BTF/.BTF.ext.
  clang -target bpf -D__TARGET_ARCH_"$target" -O2 -g -Wall -Werror -I"$work" -c "$src" -o "$work/droptail.bpf.o"
  mkdir -p "$(dirname "$out")"
  llvm-strip -g "$work/droptail.bpf.o" -o "$out.tmp"
  mv "$out.tmp" "$out"
fi
echo "$out"
