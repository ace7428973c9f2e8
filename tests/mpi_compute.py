"""Run under mpiexec by tests/test_mpi.py: one-shot results of the water test model on a few
geometries, saved by rank 0 (positions in bohr from an .npy file)."""

import sys

import numpy as np

from ipi_jlcdm.model import JLCDModel
from ipi_jlcdm.oneshot import OneShotEngine
from ipi_jlcdm.parallel import world

model_path, geometries_path, output_path = sys.argv[1:4]
model = JLCDModel.load(model_path)
engine = OneShotEngine(model, model.level)
rows = []
for xyz in np.load(geometries_path):
    res = engine.compute(np.array([8, 1, 1]), xyz)
    rows.append(np.concatenate([[res.energy, res.gap, res.residual], res.dipole, res.forces.ravel()]))
if world().rank == 0:
    np.save(output_path, np.array(rows))
    print(f"ranks={world().size}")
