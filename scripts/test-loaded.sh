#!/usr/bin/env bash
# The whole suite on a loaded machine: `npm test` with two busy loops beside it (on a 2-core
# machine, a load average of about 4), as a busy CI runner or a shared host would be. No test
# may have a timeout tighter than this needs. Usage: npm run test:loaded
set -u
cd "$(dirname "$0")/.."
loops=()
for _ in 1 2; do
  (while :; do :; done) &
  loops+=($!)
done
trap 'kill "${loops[@]}" 2>/dev/null' EXIT
echo "# two busy loops: ${loops[*]}"
npm test
