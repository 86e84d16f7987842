#!/usr/bin/env bash
# Stop the daemons .ci/slurm/up.sh started (by their PID files in $SLURM_CI_DIR), in the reverse order.
set -u
DIR=${SLURM_CI_DIR:-/tmp/qrepro-slurm}
for daemon in slurmd slurmctld slurmdbd mariadb/mariadbd munge/munged; do
  pid_file="$DIR/$daemon.pid"
  [ -f "$pid_file" ] || continue
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    echo "stopped ${daemon#*/}"
  fi
  rm -f "$pid_file"
done
