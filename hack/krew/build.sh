#!/usr/bin/env bash
# Builds krew (sigs.k8s.io/krew, pinned in hack/krew/go.mod) into the cache outside the checkout,
# keyed by a hash of go.mod, go.sum and the Go version, so the test of the krew package installs it
# with krew itself. Prints the binary's path on stdout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cached_go_build krew krew sigs.k8s.io/krew/cmd/krew
