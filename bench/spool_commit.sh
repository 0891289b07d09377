#!/bin/sh
# bench/spool_commit.sh - group commit of the spool under concurrent writers.
#
# Usage: bench/spool_commit.sh BUILD_DIR [WRITERS] [MESSAGES_PER_WRITER]
#
# Runs tests/spool_load (built by "make check" or "make tests/spool_load")
# three times on a fresh spool in a temporary folder on the file system
# of $TMPDIR, and once more under strace to count sync system calls.
set -eu
build=${1:?usage: bench/spool_commit.sh BUILD_DIR [WRITERS] [MESSAGES]}
writers=${2:-20}
messages=${3:-50}
load="$build/tests/spool_load"
[ -x "$load" ] || make -C "$build" tests/spool_load >/dev/null

for run in 1 2 3; do
	dir=$(mktemp -d)
	echo "run $run: $writers writers x $messages messages"
	"$load" --writers "$writers" --messages "$messages" --verify "$dir" |
	    grep -E '^(messages_per_round|sync_calls_per_message|commits_per_second) '
	rm -rf "$dir"
done

if command -v strace >/dev/null 2>&1; then
	dir=$(mktemp -d)
	echo "under strace (sync calls of the whole process):"
	strace -f -c -e trace=fsync,fdatasync,syncfs \
	    "$load" --writers "$writers" --messages "$messages" "$dir" 2>&1 |
	    grep -E 'syncfs|fsync|fdatasync|total'
	rm -rf "$dir"
fi
