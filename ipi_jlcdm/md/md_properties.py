"""i-PI properties files of the shipped inputs, read back, and the conserved-energy statistics of
an NVE run (the check a user makes first: does the MD conserve the energy it is served?).

Columns as the shipped XML inputs write them (inputs/uracil/nve.xml): step, time (ps), conserved
quantity (eV), temperature (K), kinetic energy (eV), potential energy (eV).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ipi_jlcdm.analysis.ir import last_of_repeated_steps


def read_properties(path: str | Path) -> np.ndarray:
    """Rows (nsteps, 6) of an i-PI properties file, one per step: a continued run writes the steps
    after its checkpoint again, the last copy counts."""
    rows = np.loadtxt(path, ndmin=2)
    keep = last_of_repeated_steps([int(s) for s in rows[:, 0]])[1]
    return rows[keep]


def conservation(props: np.ndarray) -> dict[str, float]:
    """Conserved-energy statistics of an NVE run (rows of ``read_properties``) in meV and meV/ps:
    change from the first step to the last, peak to peak, the slope of a straight-line fit (the
    drift, less sensitive to where the run happens to end than the change) and, for scale, the
    range of the potential energy."""
    time_ps, conserved_mev = props[:, 1], props[:, 2] * 1000.0
    slope = float(np.polyfit(time_ps, conserved_mev, 1)[0]) if len(props) > 2 else 0.0
    return {"change_meV": float(conserved_mev[-1] - conserved_mev[0]),
            "peak_to_peak_meV": float(np.ptp(conserved_mev)),
            "slope_meV_per_ps": slope,
            "potential_range_meV": float(np.ptp(props[:, 5]) * 1000.0)}
