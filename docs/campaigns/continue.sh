#!/usr/bin/env bash
# Continue the committed campaigns of this folder in the background, one queue per core (see README.md).
# Usage: bash docs/campaigns/continue.sh [PYTHON]   (PYTHON: the interpreter with ipi_jlcdm installed)
# Each campaign resumes from its last checkpoint (a finished one only reports and returns), and the next
# campaign of a queue starts when the one before it finishes. Stop with
# `kill -TERM $(pgrep -f 'ipi_jlcdm.cli.main campaign')`: the running campaign saves its checkpoint and exits non-zero,
# which ends its queue too. Logs go to campaign_logs/ (not committed).
set -euo pipefail
cd "$(dirname "$0")"
PY=${1:-python}
mkdir -p campaign_logs
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
V5=(--model uracil --forces harris-foulkes --dipole anderson --anderson-steps 3 --max-lag-fs 250)
V5_300K=(uracil_300K_v5 --temperature 300 "${V5[@]}" --first-nvt-steps 20 --nvt-steps 100 --branch)

campaign() { "$PY" -m ipi_jlcdm.cli.main campaign "$@"; }

# Queue A: the SCF reference (1 ps NVE), then 300 K segment 1, then the 100 K run.
( trap '' HUP
  campaign uracil_300K_scf --temperature 300 --engine scf --from-checkpoint start_300K/start.chk \
      --segments 1 --nve-steps 2000 --max-lag-fs 250 \
  && campaign "${V5_300K[@]}" --segment 1 --nve-steps 1000 \
  && campaign uracil_100K_v5 --temperature 100 "${V5[@]}" --structure ../harmonic_uracil/samples_100K.xyz \
      --first-nvt-steps 100 --branch --segment 0 --nve-steps 1000
) >> campaign_logs/queue_a.log 2>&1 &
A_PID=$!
# Queue B: 300 K segment 0 (one continuous 2000-step NVE: the 1 ps drift), then segment 2.
( trap '' HUP
  campaign "${V5_300K[@]}" --from-checkpoint start_300K/start.chk --segment 0 --nve-steps 2000 \
  && campaign "${V5_300K[@]}" --segment 2 --nve-steps 1000
) >> campaign_logs/queue_b.log 2>&1 &
echo "started queue A (pid $A_PID: SCF, seg1, 100 K) and queue B (pid $!: seg0, seg2); progress: tail */seg*/*.driver.log"
