#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for jobplane's Slurm tests (and for trying the
# `slurm` environment by hand): munged, MariaDB + slurmdbd (so `sacct` has real accounting
# data, as at any real site), slurmctld and slurmd, all as root, no systemd, no cgroups.
#
#   bash .ci/slurm-up.sh          # install what is missing, configure, start, wait for the node
#   bash .ci/slurm-up.sh --stop   # stop every daemon it started
#
# It is idempotent: a cluster that already answers with an idle node is left as it is.
# The node is this machine (its host name, CPUs and memory, as `slurmd -C` reports them) in
# one partition, `debug`. State, logs and the database live in $JOBPLANE_SLURM_DIR
# (default /var/tmp/jobplane-slurm); the configuration in /etc/slurm, where the Slurm
# commands look for it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
DIR=${JOBPLANE_SLURM_DIR:-/var/tmp/jobplane-slurm}
CONF=/etc/slurm
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

say() { echo "slurm-up: $*"; }
die() { echo "slurm-up: $*" >&2; exit 1; }

stop_all() {
  $SUDO scontrol shutdown >/dev/null 2>&1 || true  # slurmctld and every slurmd
  for name in slurmdbd mariadbd munged; do
    if [ -f "$DIR/$name.pid" ]; then
      $SUDO kill "$(cat "$DIR/$name.pid")" >/dev/null 2>&1 || true
      rm -f "$DIR/$name.pid"
    fi
  done
  say "stopped"
}

node_idle() { sinfo --noheader --Node -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurm-wlm)
  command -v munged >/dev/null || missing+=(munge)
  command -v slurmdbd >/dev/null || missing+=(slurmdbd)
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

start_munge() {
  [ -s /etc/munge/munge.key ] || $SUDO /usr/sbin/mungekey --create --force
  $SUDO mkdir -p /run/munge /var/log/munge /var/lib/munge
  $SUDO chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge/munge.key
  if ! munge -n </dev/null >/dev/null 2>&1; then
    $SUDO runuser -u munge -- /usr/sbin/munged --force
    cp /run/munge/munged.pid "$DIR/munged.pid" 2>/dev/null || true
  fi
  munge -n </dev/null | unmunge >/dev/null || die "munged does not answer"
}

start_mariadb() {
  local data="$DIR/mysql"
  if [ ! -d "$data/mysql" ]; then
    mkdir -p "$data" && chown mysql:mysql "$data"
    mariadb-install-db --user=mysql --datadir="$data" --auth-root-authentication-method=socket \
      --skip-test-db >"$DIR/mariadb-install.log" 2>&1 || die "mariadb-install-db failed: see $DIR/mariadb-install.log"
  fi
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  if ! mariadb-admin ping >/dev/null 2>&1; then
    # The default socket only (slurmdbd's StorageHost=localhost finds it); no TCP port.
    setsid mariadbd --user=mysql --datadir="$data" --socket=/run/mysqld/mysqld.sock --skip-networking \
      --pid-file="$data/mariadbd.pid" --log-error="$data/mariadb.log" --innodb-buffer-pool-size=64M &
    wait_for 60 "MariaDB" mariadb-admin ping
    cp "$data/mariadbd.pid" "$DIR/mariadbd.pid"
  fi
}

write_config() {
  local node
  node=$(slurmd -C | head -n 1)  # NodeName=HOST CPUs=N Boards=... RealMemory=MB
  [[ $node == NodeName=* ]] || die "slurmd -C printed no node line: $node"
  local host=${node%% *}; host=${host#NodeName=}
  mkdir -p "$CONF" "$DIR/ctld" "$DIR/d"
  cat >"$CONF/slurm.conf" <<EOF
# Written by jobplane's .ci/slurm-up.sh: one node, this machine.
ClusterName=jobplane
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No systemd and no cgroups here: processes are tracked by their parents.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Schedule pending jobs within a second, not the default minute: tests submit many short jobs.
SchedulerParameters=bf_interval=1,sched_interval=1,sched_min_interval=100000
ReturnToService=2
# A job past its --time is killed at once (no overtime), 2 s after its SIGTERM.
OverTimeLimit=0
KillWait=2
InactiveLimit=0
# Finished jobs stay in squeue this long; after that only sacct knows them.
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$CONF/slurmdbd.conf" <<EOF
# Written by jobplane's .ci/slurm-up.sh: accounting in the local MariaDB, over its socket.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=jobplane_slurm_acct
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/slurmdbd.log
EOF
  chmod 600 "$CONF/slurmdbd.conf"
}

start_slurm() {
  # A daemon left from an earlier run answers (and is kept); a stale pid file proves nothing.
  if ! sacctmgr --noheader --parsable2 show cluster format=cluster 2>/dev/null | grep -qx jobplane; then
    pgrep -x slurmdbd >/dev/null || slurmdbd
    wait_for 60 "slurmdbd" sacctmgr --noheader show cluster
    sacctmgr --immediate add cluster jobplane >/dev/null 2>&1 || true
  fi
  scontrol ping 2>/dev/null | grep -q UP || pgrep -x slurmctld >/dev/null || slurmctld
  wait_for 60 "slurmctld" scontrol ping
  pgrep -x slurmd >/dev/null || slurmd
  wait_for 60 "an idle node in sinfo" node_idle
}

wait_for() {  # SECONDS WHAT COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what did not come up; logs in $DIR"
    sleep 0.5
  done
}

if [ "${1:-}" = "--stop" ]; then stop_all; exit 0; fi
if node_idle && sacct --noheader >/dev/null 2>&1; then say "Slurm already answers with an idle node"; exit 0; fi
[ "$(id -u)" -eq 0 ] || die "run it as root: the daemons run as root here"
install_packages
mkdir -p "$DIR"
start_munge
start_mariadb
write_config
start_slurm
say "up: $(sinfo --noheader -o '%P %D %t %c CPUs %m MB')"
