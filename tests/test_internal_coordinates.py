"""Internal coordinates and curvilinear displacements (``ipi-jlcdm sample``'s thermal geometries),
checked against geometric truth: internal coordinates do not change under rigid motions, and a
straight-line rotation applied in internal coordinates is a rigid rotation."""

import numpy as np

from ipi_jlcdm.training.internal_coordinates import InternalCoordinates, curvilinear_displacement
from ipi_jlcdm.units import BOHR_PER_ANGSTROM

ETHANOL_Z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
ETHANOL_ANGSTROM = np.array([
    [-0.0010, -0.0040, 0.0020], [1.5140, -0.0020, -0.0010], [2.0010, 1.3290, 0.0040],
    [-0.3830, -1.0270, -0.0020], [-0.3920, 0.4990, -0.8890], [-0.3890, 0.5080, 0.8880],
    [1.8890, -0.5140, 0.8910], [1.8910, -0.5080, -0.8940], [2.9640, 1.2880, 0.0050]])
METHYL = [3, 4, 5]  # the H atoms on carbon 0


def ethanol():
    coords = ETHANOL_ANGSTROM * BOHR_PER_ANGSTROM
    return coords, InternalCoordinates.for_molecule(ETHANOL_Z, coords)


def distances(coords):
    return np.linalg.norm(coords[:, None] - coords[None], axis=2)


def test_the_coordinates_see_every_internal_motion_and_no_rigid_one():
    coords, internals = ethanol()
    assert (len(internals.bonds), len(internals.angles), len(internals.dihedrals)) == (8, 13, 12)
    assert internals.rank(coords) == 3 * len(ETHANOL_Z) - 6
    b = internals.wilson_b(coords)
    centred = coords - coords.mean(axis=0)
    for axis in np.eye(3):
        translation = np.tile(axis, len(coords))
        rotation = np.cross(axis, centred).ravel()  # an infinitesimal rotation
        assert np.abs(b @ translation).max() < 1e-8
        assert np.abs(b @ rotation).max() < 1e-8
    # a bond's row is the unit vector along it (with opposite signs on its two atoms)
    i, j = internals.bonds[0]
    unit = (coords[i] - coords[j]) / np.linalg.norm(coords[i] - coords[j])
    assert np.allclose(b[0].reshape(-1, 3)[[i, j]], [unit, -unit], atol=1e-9)


def test_a_straight_line_rotation_becomes_a_rigid_rotation():
    coords, internals = ethanol()
    centred = coords - coords.mean(axis=0)
    displacement = 0.5 * np.cross([0.3, -0.5, 0.8], centred)  # 0.5 rad about a tilted axis, linearized
    stretched = coords + displacement
    assert np.abs(distances(stretched) - distances(coords)).max() > 0.1  # bohr: the straight line stretches
    moved = curvilinear_displacement(coords, displacement, internals)
    assert np.abs(distances(moved) - distances(coords)).max() < 1e-7


def test_a_straight_line_methyl_torsion_becomes_a_rotation_of_the_methyl_group():
    coords, internals = ethanol()
    axis = (coords[1] - coords[0]) / np.linalg.norm(coords[1] - coords[0])
    angle = 0.6  # rad, about the C-C bond, linearized as a rectilinear torsion mode would
    displacement = np.zeros_like(coords)
    displacement[METHYL] = angle * np.cross(axis, coords[METHYL] - coords[0])
    moved = curvilinear_displacement(coords, displacement, internals)
    # the exact rotation of the methyl H atoms by the same angle (Rodrigues' formula)
    rel = coords[METHYL] - coords[0]
    rotated = coords.copy()
    rotated[METHYL] = (coords[0] + rel * np.cos(angle) + np.cross(axis, rel) * np.sin(angle)
                       + axis * (rel @ axis)[:, None] * (1 - np.cos(angle)))
    assert np.abs(distances(moved) - distances(rotated)).max() < 1e-6
    assert np.abs(distances(coords + displacement) - distances(rotated)).max() > 0.1


def test_small_displacements_are_the_rectilinear_ones_to_first_order():
    coords, internals = ethanol()
    rng = np.random.default_rng(3)
    direction = rng.normal(size=coords.shape)
    errors = []
    for size in (1e-2, 1e-3):
        displacement = size * direction
        moved = curvilinear_displacement(coords, displacement, internals)
        q_change = internals.difference(internals.values(moved), internals.values(coords))
        linear = internals.wilson_b(coords) @ displacement.ravel()
        errors.append(np.abs(q_change - linear).max())
    assert errors[1] < errors[0] / 50  # second order: 100x smaller for a 10x smaller step


def test_linear_planar_and_two_fragment_molecules_converge_and_keep_their_bond_targets():
    """HCN (its bend seen by no coordinate), formaldehyde (its out-of-plane wag neither) and a water
    dimer (fragments joined by their closest pair): the back-transformation converges, and each bond
    length is its linearized target (bonds are independent of each other)."""
    molecules = {
        "HCN": ([1, 6, 7], [[0, 0, -1.066], [0, 0, 0], [0, 0, 1.156]]),
        "CH2O": ([6, 8, 1, 1], [[0, 0, 0], [0, 0, 1.21], [0, 0.94, -0.59], [0, -0.94, -0.59]]),
        "(H2O)2": ([8, 1, 1, 8, 1, 1], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [2.9, 0, 0], [3.2, 0.5, 0.7],
                                         [3.2, 0.5, -0.7]]),
    }
    rng = np.random.default_rng(0)
    for name, (z, angstrom) in molecules.items():
        coords = np.array(angstrom) * BOHR_PER_ANGSTROM
        internals = InternalCoordinates.for_molecule(np.array(z), coords)
        displacement = 0.1 * rng.normal(size=coords.shape)
        moved = curvilinear_displacement(coords, displacement, internals)
        assert moved is not None, name
        nb = len(internals.bonds)
        target = internals.values(coords)[:nb] + (internals.wilson_b(coords) @ displacement.ravel())[:nb]
        assert np.abs(internals.values(moved)[:nb] - target).max() < 1e-6, name
