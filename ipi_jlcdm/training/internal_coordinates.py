"""Redundant internal coordinates (bonds, angles, dihedrals) and curvilinear displacements.

A normal-mode displacement dx is linear in Cartesian coordinates. For a stiff mode that is what
the molecule does, but a torsion moves its atoms along circles: the straight-line version of a
methyl or hydroxyl rotation stretches the C-H and O-H bonds by the square of the angle. Drawn at
300 K from ethanol's normal modes (torsions at 252 and 290 cm^-1), rectilinear samples had C-H
bonds up to 1.23 Å and O-H bonds up to 1.14 Å (minimum 1.10 and 0.97) and an SCF potential energy
of 0.0148 Ha above the minimum on average, 1.5x the (3N - 6) kT / 2 = 0.0100 Ha that the classical
Boltzmann distribution at 300 K carries.

``curvilinear_displacement`` applies the same displacement in internal coordinates instead: the
geometry x whose bonds, angles and dihedrals are q(x0) + B(x0) dx (B: Wilson's matrix, dq = B dx to
first order), found by the iterative back-transformation x <- x + B(x)^+ (q_target - q(x)) from
x0 + dx. To first order it is dx itself (the same harmonic energy, so the same temperature); beyond
it a torsion rotates and bond lengths keep what the stiff modes gave them. Motions that no
coordinate of the set sees (e.g. an out-of-plane wag at an atom with one heavy neighbour) keep
their rectilinear part: the corrections lie in the row space of B.

Units: bohr and radians.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyscf.data.radii import COVALENT

#: Atoms closer than this factor times the sum of their covalent radii are bonded.
BOND_FACTOR = 1.3
#: Angles beyond this (degrees) are left out, with the dihedrals through them: a linear angle's
#: derivative is singular.
LINEAR_ANGLE_DEG = 175.0
#: Step of the central differences of Wilson's B matrix (bohr).
B_STEP_BOHR = 1e-5
#: The back-transformation stops when no atom moves more than this (bohr) in an iteration.
CONVERGED_STEP_BOHR = 1e-8
MAX_ITERATIONS = 50


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle a-b-c (radians) for stacked positions (..., 3)."""
    u, v = a - b, c - b
    return np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.einsum("...x,...x->...", u, v))


def _dihedral(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Dihedral a-b-c-d (radians, -pi..pi) for stacked positions (..., 3)."""
    b0, b1, b2 = a - b, c - b, d - c
    n1, n2 = np.cross(b0, b1), np.cross(b1, b2)
    m = np.cross(n1, b1 / np.linalg.norm(b1, axis=-1)[..., None])
    return np.arctan2(np.einsum("...x,...x->...", m, n2), np.einsum("...x,...x->...", n1, n2))


def bonded_pairs(atomic_numbers: np.ndarray, coords_bohr: np.ndarray) -> list[tuple[int, int]]:
    """Bonds (i < j) by covalent radii; fragments are joined by their closest pair of atoms so that
    the bond graph is connected."""
    z = np.asarray(atomic_numbers)
    dist = np.linalg.norm(coords_bohr[:, None] - coords_bohr[None], axis=2)
    bonded = dist < BOND_FACTOR * (COVALENT[z][:, None] + COVALENT[z][None, :])
    np.fill_diagonal(bonded, False)
    while True:  # join the fragment of atom 0 to the nearest atom outside it until one is left
        fragment = np.zeros(len(z), bool)
        fragment[0] = True
        for _ in range(len(z)):
            fragment |= bonded[fragment].any(axis=0)
        if fragment.all():
            break
        outside = np.where(fragment[:, None] & ~fragment[None, :], dist, np.inf)
        i, j = np.unravel_index(np.argmin(outside), outside.shape)
        bonded[i, j] = bonded[j, i] = True
    return [(i, j) for i in range(len(z)) for j in range(i + 1, len(z)) if bonded[i, j]]


@dataclass
class InternalCoordinates:
    """A redundant set of primitive internal coordinates: bonds (nb, 2), angles (na, 3) with the
    vertex in the middle, proper dihedrals (nd, 4) along bonded chains."""

    bonds: np.ndarray
    angles: np.ndarray
    dihedrals: np.ndarray

    @classmethod
    def for_molecule(cls, atomic_numbers: np.ndarray, coords_bohr: np.ndarray) -> InternalCoordinates:
        """Bonds by covalent radii, every angle between two bonds at an atom (except near-linear
        ones), every dihedral i-j-k-l along three bonds with both angles non-linear."""
        coords = np.asarray(coords_bohr, float)
        bonds = bonded_pairs(atomic_numbers, coords)
        neighbours = {i: set() for i in range(len(coords))}
        for i, j in bonds:
            neighbours[i].add(j)
            neighbours[j].add(i)
        limit = np.deg2rad(LINEAR_ANGLE_DEG)

        def linear(i, j, k):
            return _angle(coords[i], coords[j], coords[k]) > limit

        angles = [(i, j, k) for j in neighbours for i in sorted(neighbours[j]) for k in sorted(neighbours[j])
                  if i < k and not linear(i, j, k)]
        dihedrals = [(i, j, k, m) for j, k in bonds for i in sorted(neighbours[j] - {k})
                     for m in sorted(neighbours[k] - {j}) if i != m and not linear(i, j, k) and not linear(j, k, m)]
        return cls(np.array(bonds, int).reshape(-1, 2), np.array(angles, int).reshape(-1, 3),
                   np.array(dihedrals, int).reshape(-1, 4))

    @property
    def count(self) -> int:
        return len(self.bonds) + len(self.angles) + len(self.dihedrals)

    def values(self, coords_bohr: np.ndarray) -> np.ndarray:
        """q (count,): bond lengths (bohr), then angles and dihedrals (radians)."""
        x = np.asarray(coords_bohr, float)
        b, a, d = self.bonds, self.angles, self.dihedrals
        return np.concatenate([np.linalg.norm(x[b[:, 0]] - x[b[:, 1]], axis=-1),
                               _angle(x[a[:, 0]], x[a[:, 1]], x[a[:, 2]]),
                               _dihedral(x[d[:, 0]], x[d[:, 1]], x[d[:, 2]], x[d[:, 3]])])

    def difference(self, q: np.ndarray, q_ref: np.ndarray) -> np.ndarray:
        """q - q_ref with the dihedral differences wrapped into [-pi, pi)."""
        out = np.asarray(q, float) - q_ref
        tail = slice(len(self.bonds) + len(self.angles), None)
        out[tail] = (out[tail] + np.pi) % (2 * np.pi) - np.pi
        return out

    def wilson_b(self, coords_bohr: np.ndarray) -> np.ndarray:
        """B = dq/dx (count, 3 natm) by central differences."""
        x = np.asarray(coords_bohr, float).ravel()
        columns = []
        for k in range(len(x)):
            step = np.zeros_like(x)
            step[k] = B_STEP_BOHR
            plus, minus = (self.values((x + s).reshape(-1, 3)) for s in (step, -step))
            columns.append(self.difference(plus, minus) / (2 * B_STEP_BOHR))
        return np.array(columns).T

    def rank(self, coords_bohr: np.ndarray) -> int:
        """How many independent internal motions the set sees at ``coords_bohr`` (3N - 6 if complete)."""
        return int(np.linalg.matrix_rank(self.wilson_b(coords_bohr), tol=1e-6))


def curvilinear_displacement(coords_bohr: np.ndarray, displacement_bohr: np.ndarray,
                             internals: InternalCoordinates) -> np.ndarray | None:
    """The geometry (natm, 3) bohr whose internal coordinates are q(x0) + B(x0) dx, for the minimum
    x0 = ``coords_bohr`` and a Cartesian displacement dx (natm, 3); None if the back-transformation
    does not converge (the caller keeps x0 + dx)."""
    x0 = np.asarray(coords_bohr, float)
    dx = np.asarray(displacement_bohr, float)
    target = internals.values(x0) + internals.wilson_b(x0) @ dx.ravel()
    x = x0 + dx
    for _ in range(MAX_ITERATIONS):
        residual = internals.difference(target, internals.values(x))
        step = np.linalg.lstsq(internals.wilson_b(x), residual, rcond=1e-10)[0].reshape(x.shape)
        x = x + step
        if not np.all(np.isfinite(x)):
            return None
        if np.abs(step).max() < CONVERGED_STEP_BOHR:
            return x
    return None
