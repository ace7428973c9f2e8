#!/usr/bin/env bash
# Continue the committed campaigns of this folder in the background, one per core (see README.md).
# Usage: bash docs/campaigns/continue.sh [PYTHON]   (PYTHON: the interpreter with ipi_jlcdm installed)
# Each rerun resumes from the last checkpoint; the logs go to campaign_logs/ (not committed).
set -euo pipefail
cd "$(dirname "$0")"
PY=${1:-python}
TOOL=../../tools/md_campaign.py
mkdir -p campaign_logs
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
nohup "$PY" $TOOL uracil_300K_scf --temperature 300 --engine scf --from-checkpoint start_300K/start.chk \
    --segments 1 --nve-steps 2000 --max-lag-fs 250 >> campaign_logs/uracil_300K_scf.log 2>&1 &
SCF_PID=$!
nohup "$PY" $TOOL uracil_300K_v5 --temperature 300 --model uracil --forces harris-foulkes --dipole anderson \
    --anderson-steps 3 --from-checkpoint start_300K/start.chk --first-nvt-steps 20 --branch --segment 0 \
    --nve-steps 2000 --nvt-steps 100 --max-lag-fs 250 >> campaign_logs/uracil_300K_v5.log 2>&1 &
echo "started uracil_300K_scf (pid $SCF_PID) and uracil_300K_v5 (pid $!); progress: tail */seg*/*.driver.log"
