#!/usr/bin/env bash
# Stops what tools/slurm_up.sh started: slurmd, slurmctld (by their pid files in
# $XLT_SLURM_DIR, default /tmp/xlt-slurm) and munged (by its pid file).
set -uo pipefail
S=${XLT_SLURM_DIR:-/tmp/xlt-slurm}
for f in "$S/d.pid" "$S/ctld.pid" /run/munge/munged.pid; do
  if [ -f "$f" ]; then
    kill "$(cat "$f")" 2>/dev/null || true
  fi
done
exit 0
