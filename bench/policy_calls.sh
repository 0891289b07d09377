#!/bin/sh
# bench/policy_calls.sh - the cost of a call into the Lua policy.
#
# Usage: bench/policy_calls.sh BUILD_DIR [CALLS]
#
# Builds bench/policy_calls in BUILD_DIR if needed and runs it three
# times. Each run prints, per event, the mean time of one call with the
# JIT on (sluice's budget: the watchdog) and with the JIT off under a
# count hook, for a trivial handler and a realistic classifier.
set -eu
build=${1:?usage: bench/policy_calls.sh BUILD_DIR [CALLS]}
calls=${2:-200000}
prog="$build/bench/policy_calls"
make -C "$build" bench/policy_calls >/dev/null

for run in 1 2 3; do
	echo "run $run"
	"$prog" "$calls"
done
