#!/usr/bin/env bash
# Start a private single-node Slurm cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd) as root.
#
#   .ci/slurm/start.sh [RUN_DIR]      # RUN_DIR defaults to a new mktemp -d folder
#
# Everything (configs, key, database, state, spool, logs, sockets, PID files) lives under RUN_DIR;
# ports are picked free at start, so two runs do not collide and /etc/slurm is never read.
# On success prints RUN_DIR on stdout and writes RUN_DIR/env (`export SLURM_CONF=...`) and one
# PID file per daemon under RUN_DIR/pids/. On failure stops whatever it started and exits 1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
R=${1:-$(mktemp -d -t nfbench-slurm.XXXXXX)}
mkdir -p "$R"; R=$(cd "$R" && pwd)
TIMEOUT=${SLURM_START_TIMEOUT:-90}
PARTITION=debug

[ "$(id -u)" = 0 ] || { echo "start.sh: must run as root" >&2; exit 1; }
for b in munged mungekey mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd sinfo sacctmgr; do
  command -v "$b" >/dev/null || { echo "start.sh: $b not found (run .ci/slurm/install.sh)" >&2; exit 1; }
done

mkdir -p "$R"/{etc,pids,log,state,spool,mysql,munge}
chmod 755 "$R" "$R/munge"
export SLURM_CONF=$R/etc/slurm.conf
trap 'echo "start.sh: failed; logs in $R/log" >&2; for f in "$R"/log/*; do echo "== $f" >&2; tail -n 5 "$f" >&2; done; "$HERE/stop.sh" "$R" >&2 || true' ERR

# wait_for DESCRIPTION COMMAND...: retry COMMAND every 0.25 s until it succeeds or TIMEOUT s pass.
wait_for() {
  local what=$1; shift; local end=$(( $(date +%s) + TIMEOUT ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { echo "start.sh: timed out waiting for $what" >&2; return 1; }
    sleep 0.25
  done
}
# spawn NAME COMMAND...: start a foreground daemon in its own session, record its exact PID.
spawn() {
  local name=$1; shift
  setsid "$@" </dev/null >"$R/log/$name.out" 2>&1 &
  echo $! >"$R/pids/$name.pid"
}
free_ports() {  # four free TCP ports on 127.0.0.1
  python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
read -r DB_PORT DBD_PORT CTLD_PORT SLURMD_PORT < <(free_ports)
HOST=$(hostname -s)
# This machine's node line, exactly as slurmd detects it (CPUs, topology, RealMemory).
NODE=$(slurmd -C | head -n 1 | sed -e "s/^NodeName=[^ ]*/NodeName=$HOST NodeAddr=127.0.0.1/")
DB_PASS=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')

# 1. munge: own key, socket, PID, log and seed files.
mungekey -c -k "$R/munge/munge.key"
chmod 600 "$R/munge/munge.key"
spawn munged munged -F -f --socket="$R/munge/munge.sock" --key-file="$R/munge/munge.key" \
  --pid-file="$R/munge/munged.pid" --log-file="$R/log/munged.log" --seed-file="$R/munge/munged.seed"
wait_for "munged socket" test -S "$R/munge/munge.sock"

# 2. MariaDB on TCP 127.0.0.1 with its own data dir (the Slurm MySQL plugin needs TCP).
mariadb-install-db --no-defaults --user=root --datadir="$R/mysql" --skip-test-db \
  >"$R/log/mariadb-install.log" 2>&1
spawn mariadbd mariadbd --no-defaults --user=root --datadir="$R/mysql" --socket="$R/mysql.sock" \
  --pid-file="$R/mysql.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
  --log-error="$R/log/mariadbd.err" --skip-name-resolve --innodb-log-file-size=16M
sql() { mariadb --no-defaults -u root -S "$R/mysql.sock" -e "$1"; }
wait_for "MariaDB" sql "select 1"
sql "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
     CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

# 3. Configs: slurmdbd reads slurmdbd.conf from the folder of $SLURM_CONF (it has no -f).
AUTH="AuthType=auth/munge
AuthInfo=socket=$R/munge/munge.sock"
cat >"$R/etc/slurmdbd.conf" <<CONF
$AUTH
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$R/log/slurmdbd.log
PidFile=$R/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
chmod 600 "$R/etc/slurmdbd.conf"
: >"$R/etc/plugstack.conf"
cat >"$SLURM_CONF" <<CONF
ClusterName=local
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
$AUTH
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
PlugStackConfig=$R/etc/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# clients authenticate to slurmdbd through this munge socket (AuthInfo is not used for that)
AccountingStoragePass=$R/munge/munge.sock
KillWait=5
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$R/state
SlurmdSpoolDir=$R/spool
SlurmctldPidFile=$R/slurmctld.pid
SlurmdPidFile=$R/slurmd.pid
SlurmctldLogFile=$R/log/slurmctld.log
SlurmdLogFile=$R/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$NODE State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# 4. slurmdbd, then register the cluster before slurmctld connects.
spawn slurmdbd slurmdbd -D
wait_for "slurmdbd" sacctmgr -n list cluster
sacctmgr -n -P list cluster format=cluster | grep -qx local || sacctmgr -i add cluster local >/dev/null

# 5. slurmctld + slurmd; ready when the node is idle and accounting answers.
spawn slurmctld slurmctld -D -f "$SLURM_CONF"
spawn slurmd slurmd -D -f "$SLURM_CONF"
node_idle() { sinfo -h -p "$PARTITION" -o %T | grep -qx idle; }
wait_for "node idle in sinfo" node_idle
wait_for "sacctmgr" sacctmgr -n list cluster

# every recorded PID must be the daemon it names
for f in "$R"/pids/*.pid; do
  n=$(basename "$f" .pid); p=$(cat "$f")
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$n" ] || { echo "start.sh: PID $p is not $n" >&2; false; }
done
printf 'export SLURM_CONF=%q\nexport SLURM_PARTITION=%q\n' "$SLURM_CONF" "$PARTITION" >"$R/env"
trap - ERR
echo "$R"
