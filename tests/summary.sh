#!/bin/sh
# Print "N passed, N failed[, N skipped]" from an automake test-suite.log.
# Usage: summary.sh test-suite.log
log=$1
if [ ! -r "$log" ]; then
	echo "summary: $log not found: the test harness did not run (see the build errors above)" >&2
	exit 0
fi
awk '
	/^# PASS:/  { pass = $3 }
	/^# XFAIL:/ { pass += $3 }
	/^# SKIP:/  { skip = $3 }
	/^# FAIL:/  { fail += $3 }
	/^# XPASS:/ { fail += $3 }
	/^# ERROR:/ { fail += $3 }
	END {
		line = sprintf("%d passed, %d failed", pass, fail)
		if (skip > 0)
			line = line sprintf(", %d skipped", skip)
		print line
	}' "$log"
