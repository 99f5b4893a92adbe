#!/usr/bin/env bash
# The crash-consistency harness at full length: the real binary killed with SIGKILL at
# random moments while it imports, syncs, takes pushes, works through its inbox and
# records a simulated strap, 200 rounds
# (cargo test runs 10). Prints what was acknowledged, stored and compared.
#   scripts/crash.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export COACHD_CRASH_ROUNDS="${1:-200}"
exec cargo test --release --test integration crash::killed_at_random_moments -- --nocapture
