#!/bin/sh
# bench/scheduler.sh - the delivery queue's memory per queued message,
# the time of one scheduling decision, and a daemon's start-up and idle
# cost with a spool of frozen messages.
#
# Usage: bench/scheduler.sh BUILD_DIR [MESSAGES ...]
#
# Builds bench/scheduler in BUILD_DIR if needed. For each MESSAGES count
# (default: 10000 and 100000) it runs "scheduler memory" and
# bench/scheduler_spool.py; "scheduler decisions" runs once. When gdb is
# installed it first prints the sizes of the structs each queued message
# allocates, read from the debugging information of BUILD_DIR's objects.
# Measure with a build configured without --enable-test-hooks and
# without sanitizers. Every figure is a "name value" line.
set -eu
build=${1:?usage: bench/scheduler.sh BUILD_DIR [MESSAGES ...]}
shift
counts=${*:-10000 100000}
here=$(dirname "$0")
prog="$build/bench/scheduler"
make -C "$build" bench/scheduler >/dev/null

if command -v gdb >/dev/null 2>&1; then
	for pair in queue_msg:core/queue.o clock_timer:core/clock.o; do
		name=${pair%%:*}
		size=$(gdb -batch -ex "print sizeof(struct $name)" \
		    "$build/${pair#*:}" 2>/dev/null | sed -n 's/^\$1 = //p')
		echo "sizeof_struct_$name ${size:-unknown}"
	done
fi
for n in $counts; do
	"$prog" memory "$n"
done
"$prog" decisions 400000
for n in $counts; do
	python3 "$here/scheduler_spool.py" "$build" --messages "$n"
done
