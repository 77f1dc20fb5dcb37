#!/usr/bin/env bash
# Builds the test S3 server (hack/s3/main.go, gofakes3) into the cache outside the checkout, keyed
# by a hash of the sources and the Go version. Prints the binary's path on stdout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cached_go_build s3 s3server . main.go
