"""Unit conversions used at the edges of the program (atomic units inside).

Values are CODATA 2018 as used by PySCF (``pyscf.data.nist``), so that numbers agree with
PySCF's own conversions.
"""

from pyscf.data import nist

BOHR_PER_ANGSTROM: float = 1.0 / nist.BOHR  # nist.BOHR is in angstrom
ANGSTROM_PER_BOHR: float = nist.BOHR
EV_PER_HARTREE: float = nist.HARTREE2EV
KCAL_PER_MOL_PER_HARTREE: float = nist.HARTREE2J * nist.AVOGADRO / 4184.0
DEBYE_PER_AU: float = nist.AU2DEBYE  # dipole: e*bohr -> Debye
CM1_PER_HARTREE: float = nist.HARTREE2WAVENUMBER  # 219474.63 cm^-1 per hartree (= per a.u. of angular frequency)
EV_PER_ANGSTROM_PER_HARTREE_PER_BOHR: float = EV_PER_HARTREE / ANGSTROM_PER_BOHR
FS_PER_AU_TIME: float = nist.HBAR / nist.HARTREE2J * 1e15  # femtoseconds per atomic unit of time (hbar / E_h)
BOLTZMANN_HARTREE_PER_K: float = nist.BOLTZMANN / nist.HARTREE2J  # k_B in hartree per kelvin
ELECTRON_MASSES_PER_DALTON: float = nist.AMU2AU  # atomic mass unit in electron masses
