#!/usr/bin/env bash
# Starts a single-node Slurm on this machine (munge, slurmctld, slurmd; Debian's slurm-wlm and
# munge packages, as root) for tests/slurm.rs. The whole machine is one node in one partition,
# "debug". Safe to run again: it (re)starts only what is not answering.
set -euo pipefail
for tool in munged slurmctld slurmd sinfo scontrol; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "start-slurm: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "start-slurm: needs root to start munged, slurmctld and slurmd" >&2; exit 2; }
H=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 512 ))
mkdir -p /etc/munge /var/log/munge /run/munge /var/lib/munge /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
chown -R munge:munge /etc/munge /var/log/munge /run/munge /var/lib/munge
chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  pkill -x munged 2>/dev/null || true
  su -s /bin/sh munge -c /usr/sbin/munged
fi
# Debian's slurm 22.05: no "disabled" cgroup plugin; autodetect works in a VM without systemd
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=robustsnn
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
NodeName=$H CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
printf 'CgroupPlugin=autodetect\nIgnoreSystemd=yes\n' > /etc/slurm/cgroup.conf
if ! scontrol ping 2>/dev/null | grep -q "is UP"; then
  pkill -f /usr/sbin/slurmctld 2>/dev/null || pkill -x slurmctld 2>/dev/null || true
  sleep 1
  /usr/sbin/slurmctld
fi
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE "^(idle|mixed|allocated)"; then echo "slurm up: $(sinfo -h -o '%P %D %T %c')"; exit 0; fi
  sleep 1
done
echo "start-slurm: the node did not come up" >&2
sinfo >&2 || true
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
