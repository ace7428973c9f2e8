"""ipi_jlcdm.md.start_state (tools/start_from_trajectory.py): velocities recovered from a
velocity-Verlet trajectory and the i-PI input that continues from them (parsed by i-PI's own input
classes)."""

import xml.etree.ElementTree as ET

import numpy as np
from ipi.inputs.simulation import InputSimulation
from ipi.utils.io.inputs import io_xml

from ipi_jlcdm.geometry_io import read_xyz
from ipi_jlcdm.md import start_state as tool
from ipi_jlcdm.md.demo import packaged_inputs
from ipi_jlcdm.units import ANGSTROM_PER_BOHR, BOLTZMANN_HARTREE_PER_K, ELECTRON_MASSES_PER_DALTON, FS_PER_AU_TIME


def velocity_verlet(x, v, force, masses, dt, steps):
    """Positions of ``steps`` velocity-Verlet steps from (x, v) (atomic units)."""
    out, a = [x], force(x) / masses[:, None]
    for _ in range(steps):
        x = x + dt * v + 0.5 * dt**2 * a
        a_new = force(x) / masses[:, None]
        v = v + 0.5 * dt * (a + a_new)
        a = a_new
        out.append(x)
    return out


def test_central_differences_recover_the_velocity_verlet_velocities(tmp_path):
    frame = read_xyz(packaged_inputs() / "uracil.xyz")[0]
    rng = np.random.default_rng(3)
    masses = rng.uniform(1837.0, 29000.0, len(frame.atomic_numbers))  # H to O in electron masses
    stiffness = rng.uniform(0.1, 0.5, (len(masses), 3))  # anharmonic too: a cubic term
    x0 = frame.coords_bohr

    def force(x):
        d = x - x0
        return -stiffness * d - 0.3 * d**3

    dt = 0.5 / FS_PER_AU_TIME
    v1 = rng.normal(size=x0.shape) * np.sqrt(300.0 * BOLTZMANN_HARTREE_PER_K / masses[:, None])
    backward = velocity_verlet(x0 + 0.05, -v1, force, masses, dt, 1)  # the step before, by reversibility
    forward = velocity_verlet(x0 + 0.05, v1, force, masses, dt, 1)
    path = tmp_path / "traj.xyz"
    with open(path, "w") as f:
        for x in (backward[1], forward[0], forward[1]):
            f.write(f"{len(x)}\nangstrom\n")
            f.writelines(f"C {a:.12f} {b:.12f} {c:.12f}\n" for a, b, c in x * ANGSTROM_PER_BOHR)
    frames = read_xyz(path)
    recovered = tool.central_velocities(frames, 1, 0.5)
    np.testing.assert_allclose(recovered, v1, rtol=0, atol=1e-9 * np.abs(v1).max())
    # the temperature is the 3N kinetic temperature of those velocities (carbon masses: the file's symbols)
    carbon = np.full(len(masses), 6)
    t = tool.kinetic_temperature(carbon, recovered)
    m_c = 12.011 * ELECTRON_MASSES_PER_DALTON
    assert abs(t - m_c * np.sum(recovered**2) / (3 * len(masses)) / BOLTZMANN_HARTREE_PER_K) < 1e-9 * t


def test_first_and_last_frames_have_no_central_difference(tmp_path):
    import pytest

    frames = read_xyz(packaged_inputs() / "uracil.xyz") * 3
    for k in (0, 2):
        with pytest.raises(ValueError, match="frame before and after"):
            tool.central_velocities(frames, k, 0.5)


def test_the_start_input_sets_positions_and_velocities_for_ipi(tmp_path):
    xyz = tmp_path / "start.xyz"
    xyz.write_text((packaged_inputs() / "uracil.xyz").read_text())
    velocities = np.arange(36, dtype=float).reshape(12, 3) * 1e-4
    xml = tmp_path / "start.xml"
    tool.write_start_input(packaged_inputs() / "nve.xml", xml, xyz, velocities, "addr")
    simulation = InputSimulation()
    simulation.parse(io_xml.xml_parse_file(open(xml)).fields[0][1])
    assert simulation.total_steps.fetch() == 1
    root = ET.parse(xml).getroot()
    assert root.find("output").get("prefix") == "start"
    initialize = root.find("system/initialize")
    assert initialize.find("file").get("mode") == "xyz" and initialize.find("file").text.strip() == "start.xyz"
    node = initialize.find("velocities")
    assert node.get("mode") == "manual" and node.get("units") == "atomic_unit"
    values = np.array(node.text.replace("[", " ").replace("]", " ").replace(",", " ").split(), float)
    np.testing.assert_allclose(values, velocities.ravel(), rtol=1e-12)
