#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, from Debian's packages, for testing
# `salient plan --slurm` against a real scheduler (tests/slurm_cluster.rs; docs/cluster.md,
# "Testing against a local Slurm"). Made for Debian 12 (Slurm 22.05.8, munge 0.5.15) in a
# container without systemd, run as root.
#
# Usage:
#   local-cluster.sh install      apt-get install slurmctld slurmd munge slurm-client, only what
#                                 is missing (needs root; a second run does nothing)
#   local-cluster.sh start DIR    start munged (if not running), then slurmctld and slurmd with a
#                                 slurm.conf written to DIR/slurm.conf; every state, spool, log
#                                 and pid file is under DIR. Waits until `sinfo` shows the node
#                                 idle. Prints `export SLURM_CONF=DIR/slurm.conf`, which the
#                                 client commands (sbatch, squeue, sinfo, scontrol) need.
#                                 A second start on a running DIR says so and does nothing.
#   local-cluster.sh stop DIR     stop DIR's slurmd and slurmctld by their pid files; munged too
#                                 when this script started it and no slurmctld is left running
#   local-cluster.sh status DIR   daemons alive or not, and `sinfo`
#
# Environment: LOCAL_SLURM_CTLD_PORT, LOCAL_SLURM_SLURMD_PORT choose the TCP ports (default: two
# ports in 20000-59999 that nothing listens on, from /proc/net/tcp{,6}); LOCAL_SLURM_TIMEOUT the
# seconds to wait for the node to become idle (default 60).
#
# The slurm.conf: SlurmUser=root (jobs run as the submitting user, here root),
# ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, JobAcctGatherType=jobacct_gather/none,
# no accounting, SelectType=select/cons_tres with CR_Core, one node named `hostname -s` at
# 127.0.0.1 with CPUs=$(nproc) and 90% of MemTotal, one default partition `debug`. There is no
# cgroup.conf: with linuxproc and task/none Slurm 22.05 never reads it (22.05 has no
# `CgroupPlugin=disabled`, and its cgroup plugins cannot run in a container without systemd).
#
# munged is the system's (socket /run/munge/munge.socket.2): started as the munge user with the
# package's key (/etc/munge/munge.key, created with mungekey if absent) when it is not running.
# `stop` stops it only if this script started it (marker /run/munge/started-by-local-cluster)
# and no slurmctld is running any more on this machine, so two clusters (two DIRs) can share it.
set -euo pipefail

die() {
    echo "local-cluster.sh: error: $*" >&2
    exit 1
}
say() { echo "local-cluster.sh: $*" >&2; }

PACKAGES=(slurmctld slurmd munge slurm-client)
MUNGE_MARKER=/run/munge/started-by-local-cluster

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            echo "$p"
        fi
    done
}

need_tools() {
    local t
    for t in slurmctld slurmd munged munge unmunge sinfo sbatch squeue scontrol; do
        command -v "$t" >/dev/null 2>&1 ||
            die "$t not found: install Slurm and munge first (bash $0 install, as root)"
    done
}

cmd_install() {
    local missing
    missing=$(missing_packages | tr '\n' ' ')
    if [[ -z ${missing// /} ]]; then
        say "installed already: ${PACKAGES[*]}"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "not root: cannot install $missing(run: apt-get install -y $missing)"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $missing by hand"
    say "installing $missing"
    apt-get update -qq || die "apt-get update failed"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null ||
        die "apt-get install $missing failed"
    missing=$(missing_packages | tr '\n' ' ')
    [[ -z ${missing// /} ]] || die "still missing after apt-get install: $missing"
    say "installed: ${PACKAGES[*]}"
}

# TCP ports something listens on (decimal, one a line), from /proc/net/tcp and tcp6.
listening_ports() {
    local f
    for f in /proc/net/tcp /proc/net/tcp6; do
        [[ -r $f ]] || continue
        # local_address is HEXIP:HEXPORT; state 0A is LISTEN.
        awk 'NR > 1 && $4 == "0A" { split($2, a, ":"); print a[2] }' "$f"
    done | while read -r hex; do echo $((16#$hex)); done | sort -un
}

free_port() {
    local avoid=$1 used p tries=0
    used=$(listening_ports)
    while ((tries < 200)); do
        p=$((20000 + RANDOM % 40000))
        tries=$((tries + 1))
        [[ $p == "$avoid" ]] && continue
        grep -qx "$p" <<<"$used" || {
            echo "$p"
            return 0
        }
    done
    die "found no free TCP port in 20000-59999"
}

munge_works() {
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1
}

start_munged() {
    if munge_works; then
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "munged is not running and only root can start it"
    id munge >/dev/null 2>&1 || die "no munge user: is the munge package installed?"
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile=/etc/munge/munge.key || die "mungekey --create failed"
        elif command -v create-munge-key >/dev/null 2>&1; then
            create-munge-key -f || die "create-munge-key failed"
        else
            die "/etc/munge/munge.key is missing and neither mungekey nor create-munge-key exists"
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    runuser -u munge -- munged || die "munged did not start (see /var/log/munge/munged.log)"
    touch "$MUNGE_MARKER"
    local i
    for i in $(seq 50); do
        munge_works && return 0
        sleep 0.1
    done
    die "munged started but munge -n | unmunge fails (see /var/log/munge/munged.log)"
}

pid_alive() { # pid file
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

abs_dir() {
    [[ -n ${1:-} ]] || die "missing DIR (usage: $0 start|stop|status DIR)"
    mkdir -p "$1"
    (cd "$1" && pwd -P)
}

write_conf() { # dir
    local dir=$1 host cpus mem_kb mem ctld_port slurmd_port
    host=$(hostname -s) || die "hostname -s failed"
    [[ -n $host ]] || die "hostname -s is empty"
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
    mem=$((mem_kb / 1024 * 9 / 10))
    ((mem > 0)) || mem=1
    ctld_port=${LOCAL_SLURM_CTLD_PORT:-$(free_port 0)}
    slurmd_port=${LOCAL_SLURM_SLURMD_PORT:-$(free_port "$ctld_port")}
    [[ $ctld_port != "$slurmd_port" ]] || die "slurmctld and slurmd ports are both $ctld_port"
    mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/run"
    cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm/local-cluster.sh: a one-node test cluster under $dir.
ClusterName=local$(printf '%s' "$dir" | cksum | cut -d' ' -f1)
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

dump_logs() { # dir
    local f
    for f in "$1"/log/slurmctld.log "$1"/log/slurmd.log; do
        [[ -f $f ]] || continue
        echo "---- last lines of $f" >&2
        tail -n 20 "$f" >&2
    done
}

cmd_start() {
    local dir
    dir=$(abs_dir "${1:-}")
    need_tools
    [[ $(id -u) -eq 0 ]] || die "start needs root (SlurmUser=root; slurmd runs jobs as their user)"
    export SLURM_CONF=$dir/slurm.conf
    if pid_alive "$dir/run/slurmctld.pid" && pid_alive "$dir/run/slurmd.pid"; then
        say "already running in $dir"
        echo "export SLURM_CONF=$dir/slurm.conf"
        return 0
    fi
    # Half a cluster (one daemon died): stop what is left and start afresh.
    stop_daemons "$dir"
    start_munged
    write_conf "$dir"
    # -c: start without the jobs of an earlier start in this DIR.
    slurmctld -c -f "$dir/slurm.conf" ||
        { dump_logs "$dir"; die "slurmctld did not start"; }
    slurmd -f "$dir/slurm.conf" -N "$(hostname -s)" ||
        { dump_logs "$dir"; stop_daemons "$dir"; die "slurmd did not start"; }
    local timeout=${LOCAL_SLURM_TIMEOUT:-60} waited=0 state=""
    while ((waited < timeout * 2)); do
        state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n 1 || true)
        [[ $state == idle ]] && break
        if ! pid_alive "$dir/run/slurmctld.pid" || ! pid_alive "$dir/run/slurmd.pid"; then
            dump_logs "$dir"
            stop_daemons "$dir"
            die "a Slurm daemon exited during start-up (logs above, in $dir/log)"
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    if [[ $state != idle ]]; then
        sinfo -N -l >&2 || true
        dump_logs "$dir"
        stop_daemons "$dir"
        die "the node is not idle after ${timeout}s (state: '${state:-no answer from slurmctld}')"
    fi
    say "running: one node $(hostname -s), $(nproc) CPU(s), conf $dir/slurm.conf"
    echo "export SLURM_CONF=$dir/slurm.conf"
}

stop_one() { # pid file, name
    local pid i
    [[ -s $1 ]] || return 0
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] || {
        rm -f "$1"
        return 0
    }
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$2 (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $2 (pid $pid)"
    fi
    rm -f "$1"
}

# Whether any slurmctld runs on this machine (another DIR's): /proc, as procps may be absent.
any_slurmctld() {
    local c
    for c in /proc/[0-9]*/comm; do
        [[ $(cat "$c" 2>/dev/null) == slurmctld ]] && return 0
    done
    return 1
}

stop_daemons() { # dir
    stop_one "$1/run/slurmd.pid" slurmd
    stop_one "$1/run/slurmctld.pid" slurmctld
}

cmd_stop() {
    local dir
    [[ -n ${1:-} ]] || die "missing DIR (usage: $0 stop DIR)"
    [[ -d $1 ]] || {
        say "no $1: nothing to stop"
        return 0
    }
    dir=$(abs_dir "$1")
    stop_daemons "$dir"
    if [[ -f $MUNGE_MARKER ]] && ! any_slurmctld; then
        if [[ -s /run/munge/munged.pid ]]; then
            stop_one /run/munge/munged.pid munged
        fi
        rm -f "$MUNGE_MARKER"
    fi
}

cmd_status() {
    local dir rc=0
    [[ -n ${1:-} && -d $1 ]] || die "no cluster directory ${1:-} (usage: $0 status DIR)"
    dir=$(abs_dir "$1")
    for d in slurmctld slurmd; do
        if pid_alive "$dir/run/$d.pid"; then
            echo "$d: running (pid $(<"$dir/run/$d.pid"))"
        else
            echo "$d: not running"
            rc=1
        fi
    done
    if munge_works; then echo "munged: running"; else
        echo "munged: not running"
        rc=1
    fi
    if ((rc == 0)); then
        SLURM_CONF=$dir/slurm.conf sinfo -N -l || rc=1
        echo "export SLURM_CONF=$dir/slurm.conf"
    fi
    return $rc
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
status) cmd_status "${2:-}" ;;
*)
    echo "usage: $0 install | start DIR | stop DIR | status DIR" >&2
    exit 2
    ;;
esac
