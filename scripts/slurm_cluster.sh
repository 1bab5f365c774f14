#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for trying the sweep launcher's SLURM path
# and for its tests. Needs root and Debian's slurm-wlm and munge packages (install: `install`).
#
#   bash scripts/slurm_cluster.sh install     # apt-get install slurm-wlm munge (once)
#   bash scripts/slurm_cluster.sh start       # idempotent; prints the export line for clients
#   export SLURM_CONF=/tmp/ppo-slurm/slurm.conf
#   python scripts/benchmark.py --preset smoke --slurm-partition debug
#   bash scripts/slurm_cluster.sh stop        # stops only the daemons this script started
#
# Everything lives in $PPO_SLURM_DIR (default /tmp/ppo-slurm): config, state, logs and the pid
# files of the daemons it started. Nothing under /etc/slurm is touched; clients find the cluster
# through SLURM_CONF.
set -euo pipefail

DIR="${PPO_SLURM_DIR:-/tmp/ppo-slurm}"
CONF="$DIR/slurm.conf"
NODE="$(hostname)"
CPUS="$(nproc)"

install_packages() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
  mkdir -p "$DIR/state" "$DIR/spool"
  cat >"$CONF" <<EOF
ClusterName=ppo-test
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
KillWait=10
NodeName=$NODE CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
}

start_munge() {
  # An already running munged (ours or the machine's) is used as it is.
  if [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  local before pid
  before=" $(pgrep -d ' ' -x munged || true) "
  munged --force --pid-file="$DIR/munged.pid" 2>/dev/null || munged --force
  if [ ! -s "$DIR/munged.pid" ]; then
    # A munged without --pid-file: ours is the munged that was not running before.
    for pid in $(pgrep -x munged); do
      case "$before" in *" $pid "*) ;; *) echo "$pid" >"$DIR/munged.pid" ;; esac
    done
  fi
  if [ -s "$DIR/munged.pid" ]; then touch "$DIR/munged.started-here"; fi
}

start() {
  install_packages
  mkdir -p "$DIR"
  write_config
  start_munge
  alive "$DIR/slurmctld.pid" || slurmctld -f "$CONF"
  sleep 1
  alive "$DIR/slurmd.pid" || slurmd -f "$CONF"
  for _ in $(seq 60); do
    if SLURM_CONF="$CONF" sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      echo "SLURM is up: node $NODE, partition debug, $CPUS CPUs"
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 1
  done
  echo "SLURM did not come up; see $DIR/slurmctld.log and $DIR/slurmd.log" >&2
  return 1
}

stop() {
  for daemon in slurmd slurmctld; do
    if alive "$DIR/$daemon.pid"; then
      kill "$(cat "$DIR/$daemon.pid")"
      for _ in $(seq 20); do alive "$DIR/$daemon.pid" || break; sleep 0.5; done
    fi
    rm -f "$DIR/$daemon.pid"
  done
  if [ -f "$DIR/munged.started-here" ] && alive "$DIR/munged.pid"; then
    kill "$(cat "$DIR/munged.pid")"
  fi
  rm -f "$DIR/munged.pid" "$DIR/munged.started-here"
  echo "SLURM stopped"
}

case "${1:-}" in
  install) install_packages ;;
  start) start ;;
  stop) stop ;;
  status) SLURM_CONF="$CONF" sinfo ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
