#!/usr/bin/env bash
# Builds the real-node test environment's cluster DNS (hack/coredns/main.go: CoreDNS with the
# kubernetes plugin) into the cache outside the checkout, keyed by a hash of the sources and the Go
# version. Prints the binary's path on stdout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cached_go_build coredns coredns . main.go
