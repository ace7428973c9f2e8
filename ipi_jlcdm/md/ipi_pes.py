"""i-PI PES plug-in: the JLCDM (or SCF) engine inside i-PI's own Python driver or ``<ffdirect>``.

    i-pi-py_driver -m custom -P $(python -c "import ipi_jlcdm.md.ipi_pes as m; print(m.__file__)") \\
        -u -a uracil_jlcdm -o model=uracil,engine=jlcdm

    <ffdirect name='jlcdm' pbc='false'>
      <pes> custom </pes> <pes_path> /path/to/ipi_jlcdm/md/ipi_pes.py </pes_path>
      <parameters> {model: uracil, engine: jlcdm} </parameters>
    </ffdirect>

Options: model (file or packaged name), engine ('jlcdm' or 'scf'), structure (XYZ with the atoms
in i-PI's order; default the model's training molecule), grid_level. Extras carry the same JSON
as ``ipi-jlcdm driver``. The ``ipi-jlcdm driver`` command adds what a plug-in cannot: connection
retries, draining on errors, atom-count checks with clear messages, and MPI.
"""

import time

import numpy as np
from ipi.pes.dummy import Dummy_driver

from ipi_jlcdm.electronic.engines import make_engine, molecule_atomic_numbers
from ipi_jlcdm.md.driver import extras_json

__DRIVER_NAME__ = "jlcdm"
__DRIVER_CLASS__ = "JLCDM_driver"


class JLCDM_driver(Dummy_driver):
    """i-PI PES: ``compute_structure(cell, pos)`` with pos (natm, 3) bohr -> energy (Ha), forces
    (Ha/bohr), zero virial, extras JSON (dipole in e*bohr)."""

    def __init__(self, model="uracil", engine="jlcdm", structure=None, grid_level=None, verbose=False, *args,
                 **kwargs):
        self.model, self.engine_name = str(model), str(engine)
        self.structure = structure
        self.grid_level = None if grid_level is None else int(grid_level)
        super().__init__(verbose, *args, **kwargs)

    def check_parameters(self):
        self.atomic_numbers = molecule_atomic_numbers(self.structure, self.model)
        self.engine = make_engine(self.engine_name, self.model, self.grid_level)

    def compute_structure(self, cell, pos):
        pos = np.asarray(pos, dtype=float).reshape(-1, 3)
        if len(pos) != len(self.atomic_numbers):
            raise ValueError(f"atom count mismatch: i-PI sent {len(pos)} atoms, the molecule has "
                             f"{len(self.atomic_numbers)}")
        t0 = time.perf_counter()
        result = self.engine.compute(self.atomic_numbers, pos)
        result.check_finite()
        extras = extras_json(result, time.perf_counter() - t0, self.engine_name)  # no step history here
        return result.energy, np.asarray(result.forces, float), np.zeros((3, 3)), extras
