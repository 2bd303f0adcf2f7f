#!/usr/bin/env bash
# tests/mpi/mpirun_check.sh: runs a program under mpirun with a watchdog and checks its output.
#
#   mpirun_check.sh MPIRUN NP [-m mpirun-option]... [-e regex]... [-x regex]... [-c regex=count]...
#                   [--min-cores N] -- program [args...]
#
#   -e regex        some line of the output (stdout and stderr together) must match
#   -x regex        no line may match
#   -c regex=count  exactly `count` lines must match
#   --min-cores N   skip (exit 77) on a machine with fewer CPUs than N
# Fails when mpirun exits non-zero or runs past 120 s (timeout kills it, then its ranks);
# skips (exit 77, CTest's SKIP_RETURN_CODE) when mpirun is missing. Runs as root in a
# container: OMPI_ALLOW_RUN_AS_ROOT*, and the vader BTL without single-copy (no CMA/ptrace).
set -uo pipefail
mpirun=$1 np=$2
shift 2
opts=() expect=() reject=() counts=() min_cores=0
while [ $# -gt 0 ]; do
  case $1 in
    -m) opts+=("$2"); shift 2 ;;
    -e) expect+=("$2"); shift 2 ;;
    -x) reject+=("$2"); shift 2 ;;
    -c) counts+=("$2"); shift 2 ;;
    --min-cores) min_cores=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "mpirun_check: unknown option $1" >&2; exit 2 ;;
  esac
done
if ! command -v "$mpirun" >/dev/null 2>&1; then
  echo "mpirun_check: SKIP: $mpirun not found (apt-get install openmpi-bin)"; exit 77
fi
if [ "$(nproc)" -lt "$min_cores" ]; then
  echo "mpirun_check: SKIP: needs $min_cores CPUs, this machine has $(nproc)"; exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
out=$(timeout -k 10 120 "$mpirun" -np "$np" --allow-run-as-root --oversubscribe --mca btl self,vader \
        "${opts[@]}" "$@" 2>&1)
rc=$?
printf '%s\n' "$out"
fail=0
if [ $rc -ne 0 ]; then
  [ $rc -eq 124 ] && echo "mpirun_check: FAIL: mpirun ran past 120 s and was killed" \
                  || echo "mpirun_check: FAIL: mpirun exited with $rc"
  fail=1
fi
for re in "${expect[@]}"; do
  grep -Eq -- "$re" <<<"$out" || { echo "mpirun_check: FAIL: no line matches /$re/"; fail=1; }
done
for re in "${reject[@]}"; do
  grep -Eq -- "$re" <<<"$out" && { echo "mpirun_check: FAIL: a line matches /$re/"; fail=1; }
done
for rc_pair in "${counts[@]}"; do
  re=${rc_pair%=*} want=${rc_pair##*=}
  got=$(grep -Ec -- "$re" <<<"$out")
  [ "$got" -eq "$want" ] || { echo "mpirun_check: FAIL: $got lines match /$re/, expected $want"; fail=1; }
done
[ $fail -eq 0 ] && echo "mpirun_check: PASS"
exit $fail
