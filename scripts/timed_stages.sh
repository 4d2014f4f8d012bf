#!/usr/bin/env bash
# Run make targets one after the other, time each, and print a table at the end.
#
#   bash scripts/timed_stages.sh MAKE STAGE...      (what `make test` runs)
#
# Stops at the first stage that fails, prints the table (the failed stage marked FAILED, the stages
# not run marked so) and exits with that stage's status. A stage named `install` runs only when the
# virtualenv is missing or out of date (`make -q install`), and is listed only then.
set -uo pipefail

make_cmd=${1:?usage: timed_stages.sh MAKE STAGE...}
shift
stages=("$@")
declare -a names=() secs=() states=()
failed=""
rc=0
start_all=$(date +%s)

for stage in "${stages[@]}"; do
    if [[ -n $failed ]]; then
        names+=("$stage"); secs+=(""); states+=("not run")
        continue
    fi
    if [[ $stage == install ]] && $make_cmd -q install >/dev/null 2>&1; then
        continue  # up to date: nothing to install, nothing to list
    fi
    echo
    echo "==== make test: $stage ===="
    t0=$(date +%s)
    $make_cmd "$stage"
    status=$?
    t1=$(date +%s)
    names+=("$stage"); secs+=($((t1 - t0)))
    if [[ $status -eq 0 ]]; then
        states+=("ok")
    else
        states+=("FAILED (exit $status)")
        failed=$stage
        rc=$status
    fi
done

total=$(($(date +%s) - start_all))
fmt() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }
echo
echo "make test: time per stage"
printf '  %-12s %8s  %s\n' stage "min:s" result
for i in "${!names[@]}"; do
    if [[ -n ${secs[$i]} ]]; then t=$(fmt "${secs[$i]}"); else t="-"; fi
    printf '  %-12s %8s  %s\n' "${names[$i]}" "$t" "${states[$i]}"
done
printf '  %-12s %8s\n' total "$(fmt "$total")"
echo
if [[ -n $failed ]]; then
    echo "make test: FAILED at stage '$failed' (make $failed); the stages after it did not run"
    exit "$rc"
fi
echo "make test: all checks passed"
