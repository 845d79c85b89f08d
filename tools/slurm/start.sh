#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the sharded-run tests: munge for authentication, slurmctld and
# slurmd with a configuration written here (Debian's slurm-wlm 22.05 and munge 0.5). Needs root (the daemons
# run as root; the CI machine and the session machine are root). Idempotent: a running cluster is left alone.
#
#   tools/slurm/start.sh        # then: srun -n 4 hostname; sbatch --array=0-3 ...; tools/slurm/stop.sh
#
# The node declares 8 CPUs whatever the machine has (config_overrides), so that `srun -n 4` and a 4-task array
# run at once on a 2-core runner: the shards of a test must start together to test a synchronized start.
set -euo pipefail

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
  exit 0
fi

host=$(hostname -s)
conf=/etc/slurm/slurm.conf
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force

cat > "$conf" <<CONF
ClusterName=rlt
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmUser=root
MpiDefault=none
NodeName=$host CPUs=8 RealMemory=2048 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
# proctrack/linuxproc and task/none need no cgroups (a container runner may not delegate them); slurmd still
# reads cgroup.conf, and rejects an empty one.
echo "CgroupPlugin=autodetect" > /etc/slurm/cgroup.conf

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 30); do
  if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
    exit 0
  fi
  sleep 1
done
echo "slurm did not come up: $(sinfo 2>&1 | tail -1)" >&2
tail -5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
