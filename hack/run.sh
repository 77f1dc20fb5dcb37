#!/usr/bin/env bash
# Entry point of the npm scripts: bootstrap, then run one of: test, test:unit, test:e2e, demo, bench.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/bootstrap.sh
source "$repo/hack/bootstrap.sh"
cd "$repo"
what="${1:?usage: hack/run.sh test|test:unit|test:e2e|demo|bench}"; shift
case "$what" in
  test)      tsc --noEmit -p . && mocha --config test/unit/.mocharc.json "$@" && mocha --config test/e2e/.mocharc.json "$@" ;;
  test:unit) mocha --config test/unit/.mocharc.json "$@" ;;
  test:e2e)  mocha --config test/e2e/.mocharc.json "$@" ;;
  demo)      exec node --import tsx hack/demo.ts "$@" ;;
  bench)     exec node --import tsx bench/run.ts "$@" ;;
  *) echo "unknown: $what" >&2; exit 2 ;;
esac
