#!/usr/bin/env bash
# Entry point of the npm scripts: bootstrap, then run one of: test, test:unit, test:e2e, demo, bench.
# test:unit and test:e2e take mocha arguments: files (default: the whole suite) and flags (-g NAME).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/bootstrap.sh
source "$repo/hack/bootstrap.sh"
cd "$repo"

# mocha with the suite's config; the suite's files unless the arguments name some.
suite() {
  local name="$1"; shift
  local files=("test/$name/**/*.test.ts")
  for arg in "$@"; do [[ "$arg" == *.ts ]] && files=(); done
  mocha --config "test/$name/.mocharc.json" "$@" "${files[@]}"
}

what="${1:?usage: hack/run.sh test|test:unit|test:e2e|demo|bench}"; shift
case "$what" in
  test)
    # Both suites run even when one fails; the last line adds up both in the plain form CI reads.
    NETWARDEN_TEST_TALLY="$(mktemp)"; export NETWARDEN_TEST_TALLY
    status=0
    tsc --noEmit -p . || status=1
    tsc --noEmit -p ui || status=1 # the console's page: DOM types, JSX
    # The import rules of src/ (.dependency-cruiser.cjs); a violation names the import that broke it.
    depcruise src --config .dependency-cruiser.cjs --output-type err || status=1
    suite unit "$@" || status=1
    suite e2e "$@" || status=1
    awk '{p += $1; f += $2; s += $3} END {printf "%d passed, %d failed, %d skipped\n", p, f, s}' "$NETWARDEN_TEST_TALLY"
    rm -f "$NETWARDEN_TEST_TALLY"
    exit "$status" ;;
  test:unit) suite unit "$@" ;;
  test:e2e)  suite e2e "$@" ;;
  demo)      exec node --import tsx hack/demo.ts "$@" ;;
  bench)     exec node --import tsx bench/run.ts "$@" ;;
  *) echo "unknown: $what" >&2; exit 2 ;;
esac
