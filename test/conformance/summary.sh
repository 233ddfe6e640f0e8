#!/bin/sh
# Prints one pass's result from its junit report as "PASS: N passed, M
# failed" and writes the failed specs' names to failed.txt beside it. Only
# specs count ("[It] …" test cases); suite set-up nodes that fail count as
# failed too, so a broken suite never reads as a pass.
#
#   test/conformance/summary.sh PASS RESULTS_DIR
set -eu
pass=${1:?usage: summary.sh PASS RESULTS_DIR}
dir=${2:?usage: summary.sh PASS RESULTS_DIR}
junit=$dir/junit_01.xml
[ -s "$junit" ] || { echo "$pass: no junit report in $dir (see $dir/e2e.log)"; exit 1; }
cases=$(grep -o '<testcase name="[^"]*" classname="[^"]*" status="[a-z]*"' "$junit" |
	sed 's/^<testcase name="\([^"]*\)" classname="[^"]*" status="\([a-z]*\)"$/\2 \1/')
passed=$(printf '%s\n' "$cases" | grep -c '^passed \[It\] ' || true)
printf '%s\n' "$cases" | grep -v '^\(passed\|skipped\|pending\) ' | sed 's/^[a-z]* //;s/&#39;/'"'"'/g;s/&quot;/"/g;s/&lt;/</g;s/&gt;/>/g;s/&amp;/\&/g' >"$dir/failed.txt" || true
failed=$(grep -c . "$dir/failed.txt" || true)
echo "$pass: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
