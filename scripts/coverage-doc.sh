#!/usr/bin/env bash
# Regenerate docs/coverage.md, the requirement matrix of the certification plan, after a change
# to docs/card-spec.md's requirement IDs or to a plan's `verifies` (`cargo test --test coverage`
# fails until it is done). Usage: scripts/coverage-doc.sh [path/to/cardbench]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/cardbench}
# The spec is built into the binary: rebuild it so that it holds the current card-spec.md.
[ $# -gt 0 ] || cargo build --quiet
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
"$bin" coverage --plan test-plans/certification.toml --format md >"$out" || rc=$?
# Exit 1 is a plan with gaps: the document shows them. Anything else is an error.
[ "$rc" -le 1 ] || exit "$rc"
mv "$out" docs/coverage.md
trap - EXIT
echo "docs/coverage.md: $(grep -m1 '^Plan ' docs/coverage.md)"
