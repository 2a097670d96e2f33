#!/usr/bin/env bash
# Self-test of the Go yamux peer against itself on 127.0.0.1: every scenario pair runs with each
# side listening once (the symmetric "both" runs once). Each run is bounded by -timeout and by
# coreutils timeout. Usage: selftest.sh [PEER_BINARY]   Exit status: 0 only if every pair passed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$("$here/build.sh")} || exit 1
run_timeout=${SELFTEST_TIMEOUT:-30s} # per run, given to the peer as -timeout
hard_limit=45                        # seconds; coreutils timeout around each process
tmp=$(mktemp -d)
lpid=
cleanup() {
	[ -n "$lpid" ] && kill "$lpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

passed=()
failed=()

field() { # field KEY FILE: value of KEY= in the RESULT line of FILE
	sed -n 's/^RESULT .*[ ]'"$1"'=\([^ ]*\).*/\1/p' "$2"
}

# pair NAME LISTEN_ARGS DIAL_ARGS [CHECK]: run one listener and one dialler and check both succeeded.
pair() {
	local name=$1 largs=$2 dargs=$3 check=${4:-}
	: >"$tmp/l.out"
	# shellcheck disable=SC2086
	timeout "$hard_limit" "$bin" -mode listen -addr 127.0.0.1:0 -timeout "$run_timeout" $largs \
		>"$tmp/l.out" 2>"$tmp/l.err" &
	lpid=$!
	local port= i
	for i in $(seq 100); do
		port=$(sed -n 's/^LISTENING \([0-9]*\)$/\1/p' "$tmp/l.out")
		[ -n "$port" ] && break
		sleep 0.05
	done
	local drc=99
	if [ -n "$port" ]; then
		# shellcheck disable=SC2086
		timeout "$hard_limit" "$bin" -mode dial -addr "127.0.0.1:$port" -timeout "$run_timeout" $dargs \
			>"$tmp/d.out" 2>"$tmp/d.err"
		drc=$?
	else
		echo "no LISTENING line" >"$tmp/d.out"
		: >"$tmp/d.err"
	fi
	wait "$lpid"
	local lrc=$?
	lpid=
	local ok=yes why=
	[ "$lrc" = 0 ] || { ok=no; why="listener exit $lrc"; }
	[ "$drc" = 0 ] || { ok=no; why="$why dialler exit $drc"; }
	[ "$(grep -c '^RESULT ' "$tmp/l.out")" = 1 ] || { ok=no; why="$why listener RESULT lines"; }
	[ "$(grep -c '^RESULT ' "$tmp/d.out")" = 1 ] || { ok=no; why="$why dialler RESULT lines"; }
	if [ "$ok" = yes ] && [ -n "$check" ]; then
		$check || { ok=no; why="$why check $check"; }
	fi
	if [ "$ok" = yes ]; then
		passed+=("$name")
		printf 'PASS %-34s | %s\n' "$name" "$(grep '^RESULT' "$tmp/d.out" | cut -c1-150)"
	else
		failed+=("$name")
		printf 'FAIL %s:%s\n' "$name" "$why"
		for f in l.out l.err d.out d.err; do
			echo "--- $f"
			tail -n 15 "$tmp/$f"
		done
	fi
}

# Cross-checks between the two RESULT lines.
same_bytes() { [ "$(field bytes "$tmp/l.out")" = "$(field bytes "$tmp/d.out")" ]; }
same_echoed() { [ -n "$(field echoed "$tmp/l.out")" ] && [ "$(field echoed "$tmp/l.out")" = "$(field echoed "$tmp/d.out")" ]; }
same_sha() { [ -n "$(field sha256 "$tmp/l.out")" ] && [ "$(field sha256 "$tmp/l.out")" = "$(field sha256 "$tmp/d.out")" ]; }

# both ways: A listens and B dials, then B listens and A dials
both_ways() {
	local name=$1 a=$2 b=$3 check=${4:-}
	pair "$name [$(echo "$a" | sed 's/.*-role \([^ ]*\).*/\1/') listens]" "$a" "$b" "$check"
	pair "$name [$(echo "$b" | sed 's/.*-role \([^ ]*\).*/\1/') listens]" "$b" "$a" "$check"
}

both_ways "echo" "-scenario echo-server -role serve" "-scenario echo-client -role open -count 200 -seed 7" same_bytes
pair "both" "-scenario both -count 100 -seed 3" "-scenario both -count 100 -seed 4"
both_ways "half-close" "-scenario half-close -role accept -count 3" "-scenario half-close -role open -count 3"
both_ways "half-close-mixed" "-scenario half-close -role accept -count 10" "-scenario half-close -role open -count 10 -size -1"
both_ways "reset-raw" "-scenario reset -role accept -how raw -reset-after 1000" "-scenario reset -role open"
both_ways "reset-backlog" "-scenario reset -role accept -how backlog -backlog 1" "-scenario reset -role open -count 3 -min-resets 2"
both_ways "ping" "-scenario ping -role answer" "-scenario ping -role ping -count 10"
both_ways "goaway" "-scenario goaway -role send -count 3" "-scenario goaway -role recv -count 3"
both_ways "slow-reader" "-scenario slow-reader -role read" "-scenario slow-reader -role write" same_sha
both_ways "slow-reader-3" "-scenario slow-reader -role read -count 3 -chunk 65536" \
	"-scenario slow-reader -role write -count 3 -size 1000000 -seed 9" same_sha
# fill has no Go partner: it needs a reader that stops reading (the muxwire test freezes the writer).
both_ways "graceful" "-scenario graceful -role serve -confirm" "-scenario graceful -role open" same_echoed
both_ways "big-window" "-scenario echo-server -role serve -window 4194304" "-scenario echo-client -role open -count 50 -window 4194304" same_bytes

echo "selftest: ${#passed[@]} passed, ${#failed[@]} failed"
for n in "${failed[@]}"; do echo "  failed: $n"; done
[ "${#failed[@]}" = 0 ]
