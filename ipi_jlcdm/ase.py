"""An ASE calculator for the jlcdm (one-shot) and scf engines (``pip install ".[ase]"``).

    from ase.io import read
    from ipi_jlcdm.ase import JLCDMCalculator

    atoms = read("inputs/water/water.xyz")
    atoms.calc = JLCDMCalculator(model="water")
    atoms.get_potential_energy()      # eV
    atoms.get_forces()                # eV/Å
    atoms.get_dipole_moment()         # e·Å
    atoms.calc.results["gap"]         # eV; also "residual" and "fallback" for the jlcdm engine

Units follow ASE (eV, Å, e·Å); the engines work in atomic units inside. The engine options are
those of ``ipi-jlcdm eval`` (``engines.make_engine``). Periodic cells are refused: the engines treat
a molecule in vacuum.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ipi_jlcdm.electronic.engines import AUTO_FALLBACK, make_engine
from ipi_jlcdm.units import ANGSTROM_PER_BOHR, BOHR_PER_ANGSTROM, EV_PER_ANGSTROM_PER_HARTREE_PER_BOHR, EV_PER_HARTREE


class JLCDMCalculator(Calculator):
    """Energy (eV), forces (eV/Å), dipole (e·Å), HOMO-LUMO gap (eV, ``results['gap']``) of a molecule
    from the one-shot JLCDM step (``engine='jlcdm'``, needs ``model``) or from PySCF SCF at the
    model's level of theory (``engine='scf'``)."""

    implemented_properties = ["energy", "free_energy", "forces", "dipole"]
    default_parameters = {"model": None, "engine": "jlcdm", "grid_level": None,
                          "fallback_residual": AUTO_FALLBACK, "electronic_temperature_k": 0.0,
                          "forces": "harris-foulkes", "dipole": "anderson", "anderson_steps": 3}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        p = self.parameters
        self.engine = make_engine(p.engine, p.model, p.grid_level, p.fallback_residual, p.electronic_temperature_k,
                                  p.forces, p.dipole, p.anderson_steps)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if any(self.atoms.pbc):
            raise ValueError("JLCDMCalculator treats a molecule in vacuum: set atoms.pbc = False")
        result = self.engine.compute(self.atoms.get_atomic_numbers(), self.atoms.get_positions() * BOHR_PER_ANGSTROM)
        energy = result.energy * EV_PER_HARTREE
        self.results = {"energy": energy, "free_energy": energy,
                        "forces": np.asarray(result.forces) * EV_PER_ANGSTROM_PER_HARTREE_PER_BOHR,
                        "dipole": np.asarray(result.dipole) * ANGSTROM_PER_BOHR,
                        "gap": result.gap * EV_PER_HARTREE}
        if self.parameters.engine == "jlcdm":
            self.results["residual"] = result.residual
            self.results["fallback"] = int(result.info.get("fallback", 0))
