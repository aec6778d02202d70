# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this
# Shared by start.sh and stop.sh (sourced, not run): where the CI cluster keeps its state,
# and how a daemon is found alive. Daemons are identified by process, not by pid file:
# pid files survive restarts and killed daemons can linger as zombies.

SLURM_CI_STATE=${TFVAEGAN_SLURM_STATE:-/var/lib/tfvaegan-slurm}
SLURM_CI_ETC=/etc/slurm
SLURM_CI_CLUSTER=tfvaegan-ci
# First line of every configuration file start.sh writes; it overwrites no file without it.
SLURM_CI_MARKER="# tfvaegan-ci "
MYSQL_RUN_DIR=/run/mysqld
MUNGE_RUN_DIR=/run/munge

say() { echo "[slurm-ci] $*"; }
die() { echo "[slurm-ci] ERROR: $*" >&2; exit 1; }

# Pid file of each daemon (munged and mariadbd write theirs where their own user may write).
pid_file_of() {
  case $1 in
    munged) echo "$MUNGE_RUN_DIR/munged.pid" ;;
    mariadbd) echo "$MYSQL_RUN_DIR/mariadbd.pid" ;;
    *) echo "$SLURM_CI_STATE/run/$1.pid" ;;
  esac
}

# True when PID is a live (not zombie) process whose command name is NAME.
is_live() {
  local pid=$1 name=$2 state
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
  state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z && $state != X ]]
}

# Pid of the live daemon NAME recorded in its pid file, or nothing.
own_pid() {
  local name=$1 pid_file pid
  pid_file=$(pid_file_of "$name")
  [[ -s $pid_file ]] || return 1
  pid=$(tr -dc '0-9' <"$pid_file")
  is_live "$pid" "$name" && echo "$pid"
}

# Pid of any live process named NAME (started by this script or not), or nothing.
any_pid() {
  local name=$1 pid
  own_pid "$name" && return 0
  for pid in $(pgrep -x "$name" 2>/dev/null); do
    if is_live "$pid" "$name"; then echo "$pid"; return 0; fi
  done
  return 1
}

# Node state as sinfo reports it (idle, mixed, allocated, down*, drained, ...), or nothing.
node_state() {
  timeout 10 sinfo -h -N -n "$(hostname -s)" -o %T 2>/dev/null | head -n1
}

# Stop daemon NAME if this script started it (its pid file names a live process): TERM, then
# KILL after 15 s. A daemon someone else started is left alone.
stop_daemon() {
  local name=$1 pid waited=0
  if ! pid=$(own_pid "$name"); then
    if pid=$(any_pid "$name"); then
      say "$name: pid $pid was not started by start.sh; leaving it running"
    else
      say "$name: not running"
    fi
    rm -f "$(pid_file_of "$name")"
    return 0
  fi
  say "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  while is_live "$pid" "$name" && ((waited < 150)); do sleep 0.1; waited=$((waited + 1)); done
  if is_live "$pid" "$name"; then
    say "$name: pid $pid ignored SIGTERM for 15 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pid_file_of "$name")"
}
