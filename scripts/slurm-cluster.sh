#!/bin/bash
# A throw-away one-node Slurm cluster in a folder of its own, for tests and for
# trying deploy/slurm/distgan.sbatch by hand (see docs/multi-node.md, "Slurm").
#
#   scripts/slurm-cluster.sh start DIR   # prints `export SLURM_CONF=…`; also writes DIR/env.sh
#   . DIR/env.sh                         # then sbatch, srun, squeue, scontrol, sinfo use it
#   scripts/slurm-cluster.sh stop DIR    # cancels its jobs, stops its daemons, leaves no process
#
# Needs root (slurmd launches tasks as the submitting user) and Debian's
# slurm-wlm and munge packages. Everything lives in DIR: its own munged (own key,
# own socket), slurm.conf, state, spool, logs and pid files. The ports for
# slurmctld and slurmd are picked free at start, so a second cluster or a system
# Slurm does not clash; the system munge is neither used nor touched.
#
# Settings (environment):
#   SLURM_CLUSTER_CPUS         CPUs of the node (default: nproc)
#   SLURM_CLUSTER_MEMORY_MB    RealMemory of the node in MB (default 1024)
#   SLURM_CLUSTER_CRED_EXPIRE  AuthInfo cred_expire in s: step credential lifetime,
#                              and how long a requeued job waits before it starts
#                              again (default 10; Slurm's own default is 120)
#   SLURM_CLUSTER_TIMEOUT      seconds to wait for the node to be idle, or for
#                              daemons and jobs to end on stop (default 30)
#
# Both commands are idempotent: `start` on a running cluster prints its env
# again; `stop` on a stopped (or never started) one does nothing.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR | stop DIR | status DIR" >&2
  exit 2
}

[[ $# -eq 2 ]] || usage
CMD=$1
DIR=$2
[[ -n $DIR ]] || usage
TIMEOUT=${SLURM_CLUSTER_TIMEOUT:-30}

say() { echo "slurm-cluster: $*" >&2; }
die() {
  say "$*"
  exit 1
}
# A failed start stops whatever it had started.
start_failed() {
  say "$*"
  stop_cluster quiet
  exit 1
}

# The pid in a pid file, when that process is alive and is ours: its command
# line names DIR (slurmctld/slurmd -f DIR/slurm.conf, munged --socket=DIR/…),
# so a stale pid file whose pid was reused never gets another process killed.
live_pid() {
  local f=$1 pid
  [[ -s $f ]] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/" || return 1
  echo "$pid"
}

# TCP ports in LISTEN state on this machine (from /proc, so no extra tool is needed).
listening_ports() {
  local f
  for f in /proc/net/tcp /proc/net/tcp6; do
    [[ -r $f ]] || continue
    while read -r _ addr _ state _; do
      if [[ $state == 0A ]]; then echo $((16#${addr##*:})); fi
    done < <(tail -n +2 "$f")
  done
}

# Two distinct free ports in 20000–59999 (the ephemeral range starts above that on Linux by default).
free_ports() {
  local used p picked=()
  used=" $(listening_ports | tr '\n' ' ' || true) "
  while ((${#picked[@]} < 2)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    [[ $used == *" $p "* ]] && continue
    [[ ${#picked[@]} -eq 1 && ${picked[0]} == "$p" ]] && continue
    picked+=("$p")
  done
  echo "${picked[@]}"
}

# Waits until no process in the given pid list is alive; SIGKILLs the rest after TIMEOUT s.
wait_gone() {
  local deadline=$((SECONDS + TIMEOUT)) pid alive
  while :; do
    alive=()
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]} == 0)) && return 0
    if ((SECONDS >= deadline)); then
      say "still alive after ${TIMEOUT}s, sending SIGKILL: ${alive[*]}"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      sleep 0.5
      return 0
    fi
    sleep 0.2
  done
}

# Pids of processes started by this cluster's slurmd (slurmstepd and anything it
# left): slurmd runs with SLURM_CLUSTER_DIR=DIR in its environment, and its
# children inherit it. Our own shell and its parent are never listed.
marked_pids() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ $pid == "$$" || $pid == "$PPID" || $pid == "$BASHPID" ]] && continue
    if grep -qzxF "SLURM_CLUSTER_DIR=$DIR" "$d/environ" 2>/dev/null; then echo "$pid"; fi
  done
}

env_lines() {
  echo "export SLURM_CONF=$DIR/slurm.conf"
}

start() {
  for b in munged mungekey slurmctld slurmd sinfo; do
    command -v "$b" >/dev/null || [[ -x /usr/sbin/$b ]] || die "$b not found; install Debian's slurm-wlm and munge (apt-get install slurm-wlm munge)"
  done
  export PATH=$PATH:/usr/sbin
  [[ $(id -u) -eq 0 ]] || die "needs root (SlurmUser=root, and slurmd starts tasks as their user)"
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd -P)
  export SLURM_CONF=$DIR/slurm.conf

  if live_pid "$DIR/slurmctld.pid" >/dev/null && live_pid "$DIR/slurmd.pid" >/dev/null && live_pid "$DIR/munge/munged.pid" >/dev/null; then
    say "already running in $DIR"
    env_lines
    return 0
  fi
  # Half-started or stale: clear it first.
  stop_cluster quiet

  chmod 0700 "$DIR"
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/munge"
  chmod 0700 "$DIR/munge"

  # munge: a key of our own, our own socket; munged is strict about ownership and modes.
  if [[ ! -s $DIR/munge/munge.key ]]; then
    mungekey --create --keyfile="$DIR/munge/munge.key" 2>/dev/null ||
      dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  fi
  chmod 0600 "$DIR/munge/munge.key"
  munged --force \
    --socket="$DIR/munge/munge.socket" \
    --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed" ||
    start_failed "munged did not start; see $DIR/log/munged.log"

  local host cpus mem ports ctld_port slurmd_port
  host=$(hostname -s)
  cpus=${SLURM_CLUSTER_CPUS:-$(nproc)}
  mem=${SLURM_CLUSTER_MEMORY_MB:-1024}
  read -r ctld_port slurmd_port < <(free_ports)
  cat >"$SLURM_CONF" <<EOF
# Written by scripts/slurm-cluster.sh: a one-node test cluster living in $DIR.
ClusterName=distgantest
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=${SLURM_CLUSTER_CRED_EXPIRE:-10}
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
PlugStackConfig=$DIR/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
SchedulerType=sched/builtin
# Look at pending jobs every second (Slurm's default is 60 s): a requeued job
# starts again as soon as its BeginTime (cred_expire after the requeue) passes.
SchedulerParameters=sched_interval=1
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=30
# Completed jobs stay visible (scontrol show job) for 10 s; sbatch --wait polls
# every min(MinJobAge/2, 32) s at most, so a short MinJobAge keeps it prompt.
MinJobAge=10
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$DIR/plugstack.conf"
  cat >"$DIR/env.sh" <<EOF
# Source this to use the test cluster in $DIR (sbatch, srun, squeue, scontrol, sinfo).
$(env_lines)
EOF

  # SLURM_CLUSTER_DIR marks every process slurmd starts, so that stop can find leftovers.
  SLURM_CLUSTER_DIR=$DIR slurmctld -f "$SLURM_CONF" || start_failed "slurmctld did not start; see $DIR/log/slurmctld.log"
  SLURM_CLUSTER_DIR=$DIR slurmd -f "$SLURM_CONF" || start_failed "slurmd did not start; see $DIR/log/slurmd.log"

  local deadline=$((SECONDS + TIMEOUT)) state=''
  while ((SECONDS < deadline)); do
    state=$(sinfo -h -N -n "$host" -o '%t' 2>/dev/null || true)
    [[ $state == idle ]] && break
    sleep 0.2
  done
  if [[ $state != idle ]]; then
    say "the node is not idle after ${TIMEOUT}s (state: ${state:-none}); logs in $DIR/log"
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    start_failed "start failed; stopped what had started"
  fi
  say "node $host idle (slurmctld :$ctld_port, slurmd :$slurmd_port, munge $DIR/munge/munge.socket)"
  env_lines
}

# Cancels the jobs, stops slurmd and slurmctld (pid files), then munged, then any leftover.
stop_cluster() {
  local quiet=${1:-} pids=() pid
  [[ -d $DIR ]] || return 0
  DIR=$(cd "$DIR" && pwd -P)
  export PATH=$PATH:/usr/sbin
  export SLURM_CONF=$DIR/slurm.conf
  if [[ -f $SLURM_CONF ]] && live_pid "$DIR/slurmctld.pid" >/dev/null; then
    # Jobs first, so Slurm ends their processes itself (batch shells get SIGTERM, then SIGKILL after KillWait).
    local jobs
    jobs=$(squeue -h -o '%i' 2>/dev/null | tr '\n' ' ' || true)
    if [[ -n ${jobs// /} ]]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      local deadline=$((SECONDS + TIMEOUT))
      while ((SECONDS < deadline)) && [[ -n $(squeue -h -o '%i' 2>/dev/null) ]]; do sleep 0.3; done
    fi
  fi
  for f in slurmd.pid slurmctld.pid; do
    if pid=$(live_pid "$DIR/$f"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  ((${#pids[@]} == 0)) || wait_gone "${pids[@]}"
  # Anything slurmd started that outlived it (slurmstepd, an orphaned task).
  mapfile -t pids < <(marked_pids)
  if ((${#pids[@]} > 0)); then
    [[ -n $quiet ]] || say "stopping leftover processes: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait_gone "${pids[@]}"
  fi
  if pid=$(live_pid "$DIR/munge/munged.pid"); then
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid"
  fi
  [[ -n $quiet ]] || say "stopped ($DIR)"
}

status() {
  local f pid rc=0
  for f in munge/munged.pid slurmctld.pid slurmd.pid; do
    local name=${f##*/}
    name=${name%.pid}
    if pid=$(live_pid "$DIR/$f"); then echo "$name: running, pid $pid"; else
      echo "$name: not running"
      rc=3
    fi
  done
  return $rc
}

# One spelling of DIR everywhere (pid checks match it in command lines).
if [[ -d $DIR ]]; then DIR=$(cd "$DIR" && pwd -P); fi

case $CMD in
  start) start ;;
  stop) stop_cluster ;;
  status) status ;;
  *) usage ;;
esac
