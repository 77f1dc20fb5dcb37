# syntax=docker/dockerfile:1
# Build stage: compiles TypeScript and the cap (libpcap) native addon.
FROM node:24-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpcap-dev python3 build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY crds ./crds
RUN npx tsc -p . && npm prune --omit=dev

# Runtime: libpcap for captures, nftables/iproute2 for the network snapshot, journalctl for the
# journal source. No compilers, no npm cache.
FROM node:24-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpcap0.8 nftables iproute2 systemd \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/package.json ./
ENV NODE_ENV=production
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
