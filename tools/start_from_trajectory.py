"""An i-PI checkpoint to start MD from one frame of an NVE trajectory (``ipi_jlcdm.md.start_state``).

    python tools/start_from_trajectory.py tools/data/uracil_nve_12_steps.xyz --frame 5 \
        --timestep-fs 0.5 -o start_300K      # -> start_300K/start.chk
"""

import sys

from ipi_jlcdm.md.start_state import main

if __name__ == "__main__":
    sys.exit(main())
