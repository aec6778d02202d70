#!/usr/bin/env bash
# Stop the single-node SLURM cluster that .ci/slurm/start.sh started: cancel leftover jobs,
# then stop each daemon by its pid (TERM, KILL after 15 s). Daemons this script did not start
# are left running. Safe to run when nothing is running.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

[[ $(id -u) -eq 0 ]] || die "run as root: it stops system daemons"

if own_pid slurmctld >/dev/null; then
  leftover=$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [[ -n ${leftover// /} ]]; then
    say "cancelling leftover jobs: $leftover"
    # shellcheck disable=SC2086
    timeout 10 scancel $leftover || true
  fi
fi
for name in slurmd slurmctld slurmdbd mariadbd munged; do
  stop_daemon "$name"
done
say "stopped"
