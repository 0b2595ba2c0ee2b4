#!/usr/bin/env bash
# Install a single-node Slurm with accounting (Debian/Ubuntu, as root). Idempotent and quiet:
# does nothing when every binary is already there. Used by .ci/run before `make test`.
set -euo pipefail
need=(sinfo sbatch sacct sacctmgr scancel slurmctld slurmd slurmdbd munged mariadbd mariadb-install-db)
missing=0
for b in "${need[@]}"; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || { missing=1; break; }
done
if [ "$missing" = 0 ]; then
  echo "slurm: already installed"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
log=$(mktemp -t slurm-install.XXXXXX.log)
# policy-rc.d 101: the packages' postinst must not start system daemons; start.sh runs its own.
prc=/usr/sbin/policy-rc.d; own_prc=0
if [ ! -e "$prc" ]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; own_prc=1; fi
trap '[ "$own_prc" = 1 ] && rm -f "$prc"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
         slurm-wlm slurmdbd munge mariadb-server mariadb-client; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "slurm: apt-get install failed (log: $log)" >&2
  exit 1
fi
rm -f "$log"
echo "slurm: installed slurm-wlm, slurmdbd, munge, mariadb-server in $(( $(date +%s) - start )) s"
