# syntax=docker/dockerfile:1
# The bases are build arguments so that an image can be built where no registry is reachable:
# hack/image/build.sh passes bases made from Debian packages (mmdebstrap) and the official Node.js
# build. `docker build .` uses the official Node.js images as before.
ARG BUILD_IMAGE=node:24-bookworm
ARG RUNTIME_IMAGE=node:24-bookworm-slim

# Build stage: compiles TypeScript, the cap (libpcap) native addon and the kernel drop source's
# eBPF program (CO-RE, against the build machine's kernel BTF, /sys/kernel/btf/vmlinux).
FROM ${BUILD_IMAGE} AS build
# Installs only the packages the base lacks, so a base that has them all needs no apt mirror.
ARG BUILD_PACKAGES="libpcap-dev python3 build-essential clang llvm bpftool libbpf-dev"
RUN missing=""; for p in $BUILD_PACKAGES; do \
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $missing && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
# node-gyp compiles cap against the headers of the node in the base instead of downloading them
# from nodejs.org (the official images and the local base both have them in /usr/local/include).
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY crds ./crds
COPY hack/bpf ./hack/bpf
RUN OUT=/src/bpf/droptail.bpf.o hack/bpf/build.sh
# Only production dependencies reach the runtime stage; type declarations and source maps are never
# loaded by node at run time (about a third of @kubernetes/client-node), nor are cap's object files.
RUN npx tsc -p . && npm prune --omit=dev --no-audit --no-fund \
    && find node_modules \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -type f -delete \
    && rm -rf node_modules/cap/build/Release/obj.target node_modules/cap/build/Release/.deps \
    && find dist/src -name '*.map' -type f -delete

# Runtime: libpcap for captures, nftables/iproute2 for the network snapshot, journalctl for the
# journal source, libbpf1 to load the kernel source's program. No compilers, no kernel headers,
# no npm cache.
FROM ${RUNTIME_IMAGE}
ARG RUNTIME_PACKAGES="libpcap0.8 nftables iproute2 systemd libbpf1"
RUN missing=""; for p in $RUNTIME_PACKAGES; do \
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $missing && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/bpf ./bpf
COPY --from=build /src/package.json ./
ENV NODE_ENV=production
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
