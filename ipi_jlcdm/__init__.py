"""ipi_jlcdm: Jacobi-Legendre charge-density model (JLCDM) driving i-PI molecular dynamics.

A linear JL model predicts the deformation density of a molecule on the DFT integration grid;
PySCF builds the Kohn-Sham Hamiltonian from that density once and diagonalizes it (no SCF) to
give energy, forces, dipole and gap. See Hazra, Patil, Sanvito, arXiv:2507.16565 (2025).

Atomic units everywhere inside the package (bohr, hartree, e*bohr).
"""

__version__ = "0.1.0"
