#!/usr/bin/env bash
# Start a real single-node SLURM cluster (with accounting) on this machine, for the cluster test.
#
#   .ci/slurm/start.sh      # install if needed, start what is not running, wait for an idle node
#   .ci/slurm/stop.sh       # stop the daemons this script started, by pid
#
# Debian 12 packages (Slurm 22.05, munge, MariaDB); daemons are started by hand because CI
# containers have no systemd. Idempotent: on a healthy cluster it checks and exits in about a
# second. State, logs and pid files live in $TFVAEGAN_SLURM_STATE (default
# /var/lib/tfvaegan-slurm); the configuration is written to /etc/slurm, where sbatch, sacct and
# the executor plugin look for it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

[[ $(id -u) -eq 0 ]] || die "run as root: it installs packages and starts system daemons"
started_at=$EPOCHREALTIME
elapsed() { awk -v a="$started_at" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd slurm-wlm-mysql-plugin mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

install_packages() {
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  say "installing ${missing[*]} (apt-get update + install)"
  # Keep apt from starting services itself: this script starts each daemon with its own
  # paths, and a packaged MariaDB on the same socket would collide with ours.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"/tmp/tfvaegan-slurm-apt.log" 2>&1 ||
    { ((created_policy)) && rm -f "$policy"; die "apt-get install failed; see /tmp/tfvaegan-slurm-apt.log"; }
  ((created_policy)) && rm -f "$policy"
  say "packages installed ($(elapsed) s)"
}

# Render TEMPLATE into DEST (mode MODE) for this host; sets CONFIG_CHANGED=1 if DEST changed.
CONFIG_CHANGED=0
render_config() {
  local template=$1 dest=$2 mode=$3 node_line=$4 tmp
  if [[ -e $dest ]] && [[ $(head -n1 "$dest") != "$SLURM_CI_MARKER"* ]]; then
    die "$dest exists and was not written by this script (its first line lacks the tfvaegan-ci marker); refusing to overwrite a real cluster's configuration"
  fi
  tmp=$(mktemp "$dest.XXXXXX")
  sed -e "s|@HOST@|$(hostname -s)|g" -e "s|@STATE@|$SLURM_CI_STATE|g" -e "s|@NODE@|$node_line|g" \
    "$template" >"$tmp"
  chmod "$mode" "$tmp"
  if [[ -e $dest ]] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$dest"
    CONFIG_CHANGED=1
    say "wrote $dest"
  fi
}

write_configs() {
  mkdir -p "$SLURM_CI_ETC" "$SLURM_CI_STATE"/{run,log,spool/slurmctld,spool/slurmd}
  # slurmd -C reports what slurmd will find at registration; configuring exactly that keeps
  # the node from being drained for "Low RealMemory" or a CPU mismatch.
  local node_line
  node_line=$(slurmd -C 2>/dev/null | head -n1)
  [[ $node_line == NodeName=* ]] || die "slurmd -C did not describe this node (got: '$node_line')"
  render_config "$HERE/slurm.conf.in" "$SLURM_CI_ETC/slurm.conf" 644 "$node_line"
  render_config "$HERE/slurmdbd.conf.in" "$SLURM_CI_ETC/slurmdbd.conf" 600 "$node_line"
}

# Run COMMAND until it succeeds, at most SECONDS seconds; fails with WHAT in the message.
wait_for() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not come up within $seconds s"
    sleep 0.2
  done
}

start_munge() {
  if pid=$(any_pid munged); then say "munged: running (pid $pid)"; return 0; fi
  rm -f "$(pid_file_of munged)"
  install -d -o munge -g munge -m 755 "$MUNGE_RUN_DIR"
  if [[ ! -s /etc/munge/munge.key ]]; then
    say "munged: creating /etc/munge/munge.key"
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
  fi
  say "munged: starting as user munge"
  runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1
  wait_for 15 "munged" sh -c 'munge -n | unmunge'
}

mysql_ping() { mariadb-admin --socket="$MYSQL_RUN_DIR/mysqld.sock" ping; }

start_mariadb() {
  local datadir=$SLURM_CI_STATE/mysql
  if pid=$(any_pid mariadbd) && mysql_ping >/dev/null 2>&1; then
    say "mariadbd: running (pid $pid)"
    return 0
  fi
  [[ -z ${pid:-} ]] || die "mariadbd pid $pid is running but does not answer on $MYSQL_RUN_DIR/mysqld.sock"
  rm -f "$(pid_file_of mariadbd)" "$MYSQL_RUN_DIR/mysqld.sock"
  install -d -o mysql -g mysql -m 755 "$MYSQL_RUN_DIR"
  if [[ ! -d $datadir/mysql ]]; then
    say "mariadbd: initialising $datadir"
    install -d -o mysql -g mysql -m 750 "$datadir"
    mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
      --auth-root-authentication-method=socket >"$SLURM_CI_STATE/log/mariadb-install.log" 2>&1 ||
      die "mariadb-install-db failed; see $SLURM_CI_STATE/log/mariadb-install.log"
  fi
  say "mariadbd: starting on the Unix socket only (no TCP)"
  setsid /usr/sbin/mariadbd --user=mysql --datadir="$datadir" --skip-networking \
    --socket="$MYSQL_RUN_DIR/mysqld.sock" --pid-file="$(pid_file_of mariadbd)" \
    --log-error="$datadir/mariadb.err" </dev/null >/dev/null 2>&1 &
  wait_for 60 "mariadbd (log: $datadir/mariadb.err)" mysql_ping
}

# Start a SLURM daemon (it daemonizes itself and writes its pid file).
start_slurm_daemon() {
  local name=$1
  if pid=$(any_pid "$name"); then say "$name: running (pid $pid)"; return 0; fi
  rm -f "$(pid_file_of "$name")"
  say "$name: starting"
  setsid "/usr/sbin/$name" </dev/null >>"$SLURM_CI_STATE/log/$name.out" 2>&1 ||
    die "$name failed to start; see $SLURM_CI_STATE/log/$name.log"
  wait_for 15 "$name (log: $SLURM_CI_STATE/log/$name.log)" own_pid "$name"
}

register_cluster() {
  wait_for 30 "slurmdbd (log: $SLURM_CI_STATE/log/slurmdbd.log)" sacctmgr -n show cluster
  if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$SLURM_CI_CLUSTER"; then
    say "sacctmgr: adding cluster $SLURM_CI_CLUSTER"
    sacctmgr -i add cluster "$SLURM_CI_CLUSTER" >/dev/null
  fi
}

wait_for_idle_node() {
  local host state last="" deadline=$((SECONDS + 60)) resumed=0
  host=$(hostname -s)
  while ((SECONDS < deadline)); do
    state=$(node_state)
    [[ $state != "$last" ]] && say "node $host: ${state:-not reported yet}"
    last=$state
    case $state in
      idle | mixed | allocated | completing) return 0 ;;
      down* | drain* | fail*)
        # Left over from an earlier run (e.g. the node was stopped while registered).
        if ((!resumed)); then
          scontrol update nodename="$host" state=resume 2>/dev/null || true
          resumed=1
        fi
        ;;
    esac
    sleep 0.5
  done
  die "node $host is '$state', not idle, after 60 s; see $SLURM_CI_STATE/log/slurmd.log and slurmctld.log"
}

all_running() {
  local name
  for name in "${DAEMONS[@]}"; do any_pid "$name" >/dev/null || return 1; done
}

install_packages
write_configs
if ((CONFIG_CHANGED)); then
  # A new node description or new paths need fresh daemons; accounting keeps running.
  for name in slurmd slurmctld slurmdbd; do
    if any_pid "$name" >/dev/null; then stop_daemon "$name"; fi
  done
elif all_running && [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; then
  say "healthy: all daemons running, node $(hostname -s) is $(node_state); nothing to do ($(elapsed) s)"
  exit 0
fi
start_munge
start_mariadb
start_slurm_daemon slurmdbd
register_cluster
start_slurm_daemon slurmctld
start_slurm_daemon slurmd
wait_for_idle_node
say "ready: cluster $SLURM_CI_CLUSTER, partition debug, node $(hostname -s) idle ($(elapsed) s since start.sh began)"
