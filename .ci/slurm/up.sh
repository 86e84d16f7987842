#!/usr/bin/env bash
# A one-node SLURM cluster with accounting, for the scale-out tests (tests/test_scaleout.py) and for trying
# profiles/slurm by hand: Debian's slurm-wlm, slurmdbd, munge and MariaDB, started directly (no systemd).
#   bash .ci/slurm/up.sh                 # install what is missing, configure, start, wait until the node is idle
#   FAKE_GPUS=2 bash .ci/slurm/up.sh     # the same node with 2 fake GPUs (gres on null devices): GPU requests submit
#   bash .ci/slurm/down.sh               # stop what this script started
# Idempotent: a second run with the same settings changes nothing; other settings reconfigure and restart.
# The node is sized from `slurmd -C`. State and PID files: $SLURM_CI_DIR (default /tmp/qrepro-slurm).
set -euo pipefail
DIR=${SLURM_CI_DIR:-/tmp/qrepro-slurm}
GPUS=${FAKE_GPUS:-0}
HOST=$(hostname -s)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
mkdir -p "$DIR"

PACKAGES=(slurm-wlm slurmdbd slurm-client munge mariadb-server)
missing=()
for pkg in "${PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  $SUDO apt-get update -qq
  # the packages' own services are started below, by hand: no daemon starts during installation
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null && $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  $SUDO rm -f /usr/sbin/policy-rc.d
fi

running() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }
stop() {  # stop NAME: the daemon this script started, and wait until it has exited
  local pid; pid=$(cat "$DIR/$1.pid"); kill "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  rm -f "$DIR/$1.pid"
}
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq 1 $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "up.sh: $what did not come up within $seconds s (logs in $DIR)" >&2; exit 1
}

# --- the configuration this run asks for; a different one than what runs means a restart ---
read -r CPUS BOARDS SOCKETS CORES THREADS MEMORY < <(slurmd -C | awk '
  /NodeName/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
               print v["CPUs"], v["Boards"], v["SocketsPerBoard"], v["CoresPerSocket"], v["ThreadsPerCore"],
                     v["RealMemory"] }')
MEMORY=$((MEMORY * 9 / 10))  # leave the operating system its share
GRES=""; [ "$GPUS" -gt 0 ] && GRES=" Gres=gpu:$GPUS"
mkdir -p /etc/slurm "$DIR/spool" "$DIR/state" /var/log/slurm
cat > "$DIR/slurm.conf" <<EOF
# written by .ci/slurm/up.sh
ClusterName=qrepro-ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
# a job sees only the CPUs it was given (with task/none it sees all, and an in-job 'cores all' asks for too many)
TaskPlugin=task/affinity
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# a job without --mem takes a share, not the whole node
DefMemPerCPU=$((MEMORY / CPUS))
# an impossible request fails at submission instead of pending forever
EnforcePartLimits=ALL
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
# sacct shows each job's comment: the Snakemake rule it ran
AccountingStoreFlags=job_comment
# sacct's AllocTRES shows the GPUs a job was given
AccountingStorageTRES=gres/gpu
GresTypes=gpu
MinJobAge=3600
NodeName=$HOST CPUs=$CPUS Boards=$BOARDS SocketsPerBoard=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$MEMORY$GRES State=UNKNOWN
PartitionName=ci Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
: > "$DIR/gres.conf"
for i in $(seq 1 "$GPUS"); do  # a fake GPU is a null device; each needs its own file name
  [ -e "$DIR/fake-gpu$i" ] || mknod "$DIR/fake-gpu$i" c 1 3
  echo "NodeName=$HOST Name=gpu File=$DIR/fake-gpu$i" >> "$DIR/gres.conf"
done
cat > "$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/slurmdbd.log
EOF
chmod 600 "$DIR/slurmdbd.conf"
if [ -f /etc/slurm/slurm.conf ] && ! grep -q "^# written by .ci/slurm/up.sh" /etc/slurm/slurm.conf; then
  echo "up.sh: /etc/slurm/slurm.conf was not written by this script (a real cluster's?): not touching it" >&2; exit 1
fi
if ! cmp -s "$DIR/slurm.conf" /etc/slurm/slurm.conf || ! cmp -s "$DIR/gres.conf" /etc/slurm/gres.conf; then
  for daemon in slurmd slurmctld; do if running "$daemon"; then stop "$daemon"; fi; done
  cp "$DIR/slurm.conf" /etc/slurm/slurm.conf
  cp "$DIR/gres.conf" /etc/slurm/gres.conf
fi
cp "$DIR/slurmdbd.conf" /etc/slurm/slurmdbd.conf

# --- munge ---
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
fi
# munged runs as munge: its PID file lives in a folder that user owns
mkdir -p "$DIR/munge" /run/munge && chown munge:munge "$DIR/munge" /run/munge
if ! running munge/munged && ! munge -n >/dev/null 2>&1; then  # a munged already serving (a system one) is used
  runuser -u munge -- munged --pid-file="$DIR/munge/munged.pid"
  wait_for 10 munge munge -n
fi

# --- MariaDB, for slurmdbd's accounting ---
# the server runs as mysql: its PID file and log live in a folder that user owns
mkdir -p "$DIR/mariadb" /run/mysqld && chown mysql:mysql "$DIR/mariadb" /run/mysqld
if ! running mariadb/mariadbd; then
  mariadbd --user=mysql --pid-file="$DIR/mariadb/mariadbd.pid" --socket=/run/mysqld/mysqld.sock \
    --log-error="$DIR/mariadb/mariadb.log" >/dev/null 2>&1 &
  wait_for 30 MariaDB mariadb -u root -e "select 1"
fi
mariadb -u root -e "create database if not exists slurm_acct_db"

# --- slurmdbd, then the cluster's accounts ---
if ! running slurmdbd; then
  slurmdbd
  wait_for 20 slurmdbd sacctmgr -n show cluster
fi
sacctmgr -i add cluster qrepro-ci >/dev/null 2>&1 || true
sacctmgr -i add account ci Cluster=qrepro-ci Description=ci Organization=ci >/dev/null 2>&1 || true
sacctmgr -i add user root Account=ci Cluster=qrepro-ci >/dev/null 2>&1 || true

# --- the controller and the node ---
running slurmctld || slurmctld
wait_for 20 slurmctld scontrol ping
running slurmd || slurmd
node_idle() { sinfo -h -n "$HOST" -o %T | grep -qx idle; }
if ! node_idle; then scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true; fi
wait_for 30 "node $HOST (idle)" node_idle
echo "SLURM is up: node $HOST, $CPUS CPUs, ${MEMORY} MB, $GPUS fake GPU(s), partition ci, account ci"
