#!/usr/bin/env bash
# Builds kubeconform (github.com/yannh/kubeconform, pinned in hack/kubeconform/go.mod) into the
# cache outside the checkout, keyed by a hash of go.mod, go.sum and the Go version, so a test
# validates examples/ with schemas/ the way users do. Prints the binary's path on stdout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cached_go_build kubeconform kubeconform github.com/yannh/kubeconform/cmd/kubeconform
