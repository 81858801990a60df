#!/usr/bin/env bash
# A private single-node Slurm cluster on loopback, for huelab's tests and for trying
# `huelab run --slurm` on one machine (Debian's slurmctld + slurmd 22.05, no systemd, no
# cgroups, no munge; run as root).
#
#   bash scripts/local-slurm.sh start DIR   # writes DIR/slurm.conf, starts the daemons, waits until the node is idle
#   bash scripts/local-slurm.sh stop DIR    # cancels every job, stops the daemons, kills stray job processes
#   bash scripts/local-slurm.sh env DIR     # prints: export SLURM_CONF=DIR/slurm.conf
#
# Knobs: LOCAL_SLURM_CPUS (default 4), LOCAL_SLURM_PORT (default: a free port) and
# LOCAL_SLURM_REQUEUE_WAIT (seconds a requeued job waits, default 10; Slurm's own default is 120). The daemons
# stop by themselves after LOCAL_SLURM_LIFETIME seconds (default 3600), so a test that dies
# without calling stop leaves nothing running for long. Both commands are idempotent.
set -euo pipefail

command=${1:-}
dir=${2:-}
[ -n "$command" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|env DIR" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf
export SLURM_CONF=$conf

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null && [ "$(ps -o stat= -p "$(cat "$1")" | cut -c1)" != Z ]; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # seconds, command...
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

node_idle() { [ "$(timeout 5 sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; }

start() {
  if alive "$dir/slurmctld.pid" && alive "$dir/slurmd.pid"; then return 0; fi
  for d in slurmctld slurmd sinfo sbatch; do command -v "$d" >/dev/null || { echo "local-slurm: $d not found (setup.sh installs slurmctld, slurmd and slurm-client)" >&2; exit 1; }; done
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  local port=${LOCAL_SLURM_PORT:-$(free_port)} bind=""
  # Listen on loopback only where the host name resolves to 127.x (Slurm binds to that address).
  getent hosts "$(hostname)" | grep -q '^127\.' && bind="CommunicationParameters=NoCtldInAddrAny,NoInAddrAny"
  cat > "$conf" <<CONF
# Private single-node cluster written by scripts/local-slurm.sh
ClusterName=huelab-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
$bind
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
# A requeued job waits this long before it starts again (Slurm's default: 120 s).
AuthInfo=cred_expire=${LOCAL_SLURM_REQUEUE_WAIT:-10}
CredType=cred/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pidfile
SlurmdPidFile=$dir/slurmd.pidfile
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerParameters=batch_sched_delay=0
DependencyParameters=kill_invalid_depend
KillWait=2
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${LOCAL_SLURM_CPUS:-4} RealMemory=4096 State=UNKNOWN
# Real preemption: a job in "urgent" requeues jobs of "debug" that hold the CPUs it needs
# (SIGCONT + SIGTERM, SIGKILL after GraceTime), as a cluster's scavenger partitions do.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=5
PartitionName=urgent Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=2
CONF
  local lifetime=${LOCAL_SLURM_LIFETIME:-3600}
  (cd "$dir" && exec setsid timeout "$lifetime" slurmctld -D -i </dev/null >>"$dir/log/slurmctld.out" 2>&1) &
  echo $! > "$dir/slurmctld.pid"
  wait_for 30 timeout 5 scontrol ping || { echo "local-slurm: slurmctld did not come up; see $dir/log" >&2; exit 1; }
  (cd "$dir" && exec setsid timeout "$lifetime" slurmd -D -N localhost </dev/null >>"$dir/log/slurmd.out" 2>&1) &
  echo $! > "$dir/slurmd.pid"
  wait_for 30 node_idle || { echo "local-slurm: the node did not become idle; see $dir/log" >&2; exit 1; }
}

# Job processes of this cluster outlive the daemons (slurmstepd is reparented to init): kill
# every slurmstepd started in DIR with its session, and any process carrying this SLURM_CONF.
sweep() {
  local pid
  for pid in $(pgrep -x slurmstepd || true); do
    if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir" ]; then
      pkill -KILL -s "$(ps -o sid= -p "$pid" | tr -d ' ')" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    if { tr '\0' '\n' < "/proc/$pid/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$conf"; then
      [ "$pid" != $$ ] && kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  return 0
}

stop() {
  if [ -f "$conf" ] && alive "$dir/slurmctld.pid"; then
    local jobs
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs 2>/dev/null || true
      wait_for 15 sh -c '[ -z "$(timeout 5 squeue -h -t R,CG 2>/dev/null)" ]' || true
    fi
  fi
  local f
  for f in slurmd slurmctld; do
    if alive "$dir/$f.pid"; then
      kill "$(cat "$dir/$f.pid")" 2>/dev/null || true
      wait_for 5 sh -c "! kill -0 $(cat "$dir/$f.pid") 2>/dev/null" || kill -KILL "$(cat "$dir/$f.pid")" 2>/dev/null || true
    fi
    # The daemon itself runs under `timeout`; its own pid file names it.
    if [ -f "$dir/$f.pidfile" ]; then kill -KILL "$(cat "$dir/$f.pidfile")" 2>/dev/null || true; fi
    rm -f "$dir/$f.pid" "$dir/$f.pidfile"
  done
  sweep
}

case "$command" in
  start) start ;;
  stop) stop ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) echo "usage: $0 start|stop|env DIR" >&2; exit 2 ;;
esac
