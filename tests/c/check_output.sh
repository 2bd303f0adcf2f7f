#!/bin/sh
# check_output.sh <extended regex> <program> [args...]: runs the program, shows its output,
# and passes only if it exits 0 AND its output matches the regex (CTest's
# PASS_REGULAR_EXPRESSION alone would ignore the exit status, and with it a sanitizer's
# report at exit).
pattern=$1
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] || { echo "check_output: exit status $rc" >&2; exit 1; }
printf '%s\n' "$out" | grep -Eq "$pattern" || { echo "check_output: output does not match: $pattern" >&2; exit 1; }
