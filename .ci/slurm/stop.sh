#!/usr/bin/env bash
# Stop the cluster that start.sh started in RUN_DIR: cancel its jobs, then end each daemon by its
# saved PID (never by name), in reverse start order, and wait until every one has exited.
#   .ci/slurm/stop.sh RUN_DIR
set -uo pipefail
R=${1:?usage: stop.sh RUN_DIR}
[ -d "$R/pids" ] || exit 0
export SLURM_CONF=$R/etc/slurm.conf

alive() { [ -e "/proc/$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] \
          && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# Jobs first, so no slurmstepd or job step outlives the cluster.
if [ -f "$R/pids/slurmctld.pid" ] && alive "$(cat "$R/pids/slurmctld.pid")" slurmctld; then
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null)
  if [ -n "$jobs" ]; then
    timeout 10 scancel $jobs 2>/dev/null
    for _ in $(seq 1 60); do [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.25; done
  fi
fi
status=0
for n in slurmd slurmctld slurmdbd mariadbd munged; do
  f=$R/pids/$n.pid; [ -f "$f" ] || continue
  p=$(cat "$f")
  if alive "$p" "$n"; then
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 1 80); do alive "$p" "$n" || break; sleep 0.25; done   # 20 s
    if alive "$p" "$n"; then
      kill -KILL "$p" 2>/dev/null
      for _ in $(seq 1 20); do alive "$p" "$n" || break; sleep 0.25; done
    fi
    if alive "$p" "$n"; then echo "stop.sh: $n (PID $p) still alive" >&2; status=1; fi
  fi
done
exit $status
