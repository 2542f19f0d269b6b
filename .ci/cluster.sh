#!/usr/bin/env bash
# Start or stop the one-node Slurm cluster the cluster tests need, on this machine only (everything on 127.0.0.1):
#   eval "$(bash .ci/cluster.sh start)"   # prints the export the tests read (SLURM_CONF)
#   bash .ci/cluster.sh stop              # stops every daemon that `start` started
# Debian's slurm-wlm, slurmdbd, munge and mariadb-server (installed with apt-get where missing, as root): munged,
# a private MariaDB (its own data folder, port 16306 on 127.0.0.1) holding slurmdbd's job accounting, which
# submitit's job-state queries (sacct) need, then slurmctld and slurmd of the cluster described by .ci/slurm.conf.
# Where it cannot (not root, no apt-get, a daemon that does not come up), `start` says why on stderr and exports
# nothing, and the Slurm tests skip with that reason. Each start begins from an empty $DHC_CLUSTER_DIR (default
# /tmp/dhc-cluster: state, logs and the pid files `stop` reads), so a second run on one machine starts cleanly.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="${DHC_CLUSTER_DIR:-/tmp/dhc-cluster}"
DAEMONS="slurmd slurmctld slurmdbd mariadbd munged"

say() { echo "cluster: $*" >&2; }
fail() { say "$1: no Slurm"; return 1; }

stop() {
  for name in $DAEMONS; do
    pidfile="$state/$name.pid"
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null
      say "stopped $name ($pid)"
    fi
    rm -f "$pidfile"
  done
}

install() {
  local missing=()
  for cmd in slurmctld:slurm-wlm slurmdbd:slurmdbd munged:munge mariadbd:mariadb-server; do
    command -v "${cmd%%:*}" >/dev/null || missing+=("${cmd#*:}")
  done
  [ ${#missing[@]} = 0 ] && return 0
  command -v apt-get >/dev/null || fail "${missing[*]} not installed and there is no apt-get" || return 1
  say "installing ${missing[*]} with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$state/apt.log" 2>&1 \
    || fail "apt-get install ${missing[*]} failed (see $state/apt.log)"
}

wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds
  local tries=$(($1 * 4)); shift
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  return 1
}

munge_up() {
  # the default socket, which every Slurm command uses: a munged already running there is used as it is
  if [ -S /run/munge/munge.socket.2 ] && pgrep -x munged >/dev/null; then return 0; fi
  mkdir -p /run/munge
  [ -s /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1 || return 1
  munged --force --pid-file="$state/munged.pid" --log-file="$state/munged.log" --seed-file="$state/munge.seed"
}

accounting_up() {
  mariadb-install-db --datadir="$state/mysql" --user=root --auth-root-authentication-method=normal \
    >"$state/mysql-install.log" 2>&1 || return 1
  mariadbd --datadir="$state/mysql" --socket="$state/mysql.sock" --bind-address=127.0.0.1 --port=16306 --user=root \
    --pid-file="$state/mariadbd.pid" --log-error="$state/mariadb.log" >/dev/null 2>&1 &
  wait_for 30 mariadb --socket="$state/mysql.sock" -uroot -e "select 1" || return 1
  mariadb --socket="$state/mysql.sock" -uroot -e "CREATE DATABASE slurm_acct_db; \
    CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'dhc'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" \
    || return 1
  # slurmdbd reads slurmdbd.conf beside $SLURM_CONF, and only from a file no one else can read
  cat >"$state/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=16819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=16306
StorageUser=slurm
StoragePass=dhc
StorageLoc=slurm_acct_db
PidFile=$state/slurmdbd.pid
LogFile=$state/slurmdbd.log
CONF
  chmod 600 "$state/slurmdbd.conf"
  slurmdbd || return 1
  wait_for 30 sacctmgr -i add cluster dhc
}

start() {
  [ "$(id -u)" = 0 ] || fail "not root: the one-node Slurm needs root" || return 1
  install || return 1
  munge_up || fail "munged did not start (see $state/munged.log)" || return 1
  mem=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
  local accounting="AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\nAccountingStoragePort=16819"
  export SLURM_CONF="$state/slurm.conf"
  sed -e "s|@STATE@|$state|g" -e "s|@CPUS@|$(nproc)|" -e "s|@MEM@|$mem|" -e "s|@ACCOUNTING@|$accounting|" \
    "$here/slurm.conf" >"$SLURM_CONF"
  accounting_up || fail "job accounting (MariaDB, slurmdbd) did not start (see $state/*.log)" || return 1
  slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start (see $state/slurmctld.log)" || return 1
  slurmd -f "$SLURM_CONF" -N localhost || fail "slurmd did not start (see $state/slurmd.log)" || return 1
  wait_for 30 sh -c 'sinfo -h -o %t | grep -q idle' \
    || fail "the Slurm node did not become idle in 30 s (see $state/*.log)" || return 1
  echo "export SLURM_CONF=$SLURM_CONF"
  say "one-node Slurm up, with job accounting (SLURM_CONF=$SLURM_CONF)"
}

case "${1:-}" in
  start) stop 2>/dev/null; rm -rf "$state"; mkdir -p "$state/ctld" "$state/d"; start || stop ;;
  stop) stop ;;
  *) echo "usage: cluster.sh start|stop" >&2; exit 2 ;;
esac
exit 0
