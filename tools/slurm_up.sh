#!/usr/bin/env bash
# Starts a one-node SLURM cluster on this machine for tests/grid_slurm.rs: Debian's slurm-wlm
# and munge (installed with apt when missing; needs root), a controller and one compute node
# with every CPU here, partition `debug`, accounting off (job states come from squeue).
# State, spool, logs and pid files go to $XLT_SLURM_DIR (default /tmp/xlt-slurm);
# tools/slurm_down.sh stops the daemons again.
#
# Usage: tools/slurm_up.sh            (prints `sinfo` once the node is idle)
set -euo pipefail
S=${XLT_SLURM_DIR:-/tmp/xlt-slurm}
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
mkdir -p /etc/munge /var/log/munge /run/munge /var/lib/munge /etc/slurm "$S/state" "$S/spool" "$S/log"
[ -f /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown -R munge:munge /etc/munge /var/log/munge /run/munge /var/lib/munge
chmod 400 /etc/munge/munge.key
if ! { [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; }; then
  munged --force
fi
host=$(hostname -s)
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldLogFile=$S/log/ctld.log
SlurmdLogFile=$S/log/d.log
SlurmctldPidFile=$S/ctld.pid
SlurmdPidFile=$S/d.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
ReturnToService=2
MinJobAge=600
NodeName=$host CPUs=$(nproc) RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running "$S/ctld.pid" || slurmctld
running "$S/d.pid" || slurmd
for _ in $(seq 1 30); do
  if sinfo -h -o %t 2>/dev/null | grep -q idle; then
    sinfo
    exit 0
  fi
  sleep 1
done
echo "slurm_up.sh: the node did not become idle; see $S/log" >&2
sinfo >&2 || true
exit 1
