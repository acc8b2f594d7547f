#!/usr/bin/env bash
# strata's full test suite: the README's second command, and exactly what CI runs.
#
# On a fresh Debian machine (as root) it first installs the real validators the
# tests use (FRR, netplan, cloud-init, ifupdown2, keepalived, promtool from Debian;
# ansible-core from PyPI) with scripts/install-test-deps.sh. Then: formatting,
# clippy with warnings as errors, every unit/integration/property test (among them the
# demo driven through its API and UI in headless Chromium, and the fabric lab: `strata
# lab up/test/down` with real FRR and keepalived in network namespaces; needs root), and
# an end-to-end render of the example fleet verified by the real tools. Any failure
# fails the script (non-zero exit).
#
# Every test runs; a missing tool or data file fails its test with the command that
# installs it. The only opt-outs are explicit variables (STRATA_SKIP_TOOL_TESTS,
# STRATA_SKIP_CLIENT_TESTS, STRATA_SKIP_REAL_OPENSTACK, STRATA_SKIP_LAB_TESTS, each =1),
# and every skipped part prints a `strata-skip:` line; .ci/run sets none of them and fails
# on any such line. Test data lives in testdata/ (see its README).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  bash scripts/install-test-deps.sh
else
  echo "test.sh: not root; skipping tool installation (tests that need the tools fail unless STRATA_SKIP_TOOL_TESTS=1)"
fi

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# One build from scratch gains nothing from incremental compilation, whose caches are
# about half of target/ (a CI machine once ran out of disk); set it to 1 to keep it.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
step() { printf '\n==> %s\n' "$*"; }

step "no tracked file reaches outside the repository"
bash scripts/check-self-contained.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "render examples/fleet and verify every file with the real tools"
out=$(mktemp -d)
# Whatever fails, take down every lab the tests or this script built (the tests' own
# guards do this too, but not when the test process itself is killed).
cleanup() {
  local dir
  for dir in /run/strata-lab/ci /run/strata-lab/t-*; do
    [ -e "$dir" ] && cargo run -q -p strata-cli -- lab down --name "$(basename "$dir")" >/dev/null 2>&1 || true
  done
  rm -rf "$out"
}
trap cleanup EXIT
cargo run -q -p strata-cli -- render examples/fleet --locked --out "$out/render" --verify

# The demo (README's first command) runs inside `cargo test`: the API test
# (crates/strata-cli/tests/api.rs) starts `strata demo` and drives its API and UI.

# The fabric lab (`strata lab up examples/fleet --dc ams1`, `lab test`, `lab down`, as a
# user runs them) runs inside `cargo test` too: crates/strata-cli/tests/lab.rs, with the
# DCI and jumbo-MTU cases beside it.

echo
echo "test.sh: all checks passed"
