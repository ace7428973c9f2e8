"""The one-shot Kohn-Sham step and the SCF reference: densities, Coulomb fit, XC, forces, Anderson dipole, engines."""
