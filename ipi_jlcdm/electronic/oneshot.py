"""One-shot Kohn-Sham engine: model density in, one diagonalization, energy/forces/dipole out.

docs/METHOD.md section 5. Per geometry:
  rho_in = s rho_SAD h((rho_SAD + drho_model) / rho_SAD), s normalizes to N_e   (grid, with gradient;
           h: the identity above 8 % of rho_SAD, a smooth floor at 4 % below, ``positivity``)
  Coulomb: d = (P|Q)^-1 (Q|rho_in), (Q|rho_SAD) exact from P_SAD and 3-centre integrals,
           (Q|drho) by quadrature with V_Q(r_g); J = (mn|P) d_P, E_H = 1/2 d.(Q|rho_in)
  XC: PBE on rho_in and grad rho_in; V_xc by quadrature
  H = h_core + J + V_xc, HC = SCe once, aufbau (or Fermi-Dirac) occupations -> P_out
  E_HF = sum_i f_i e_i - E_H + E_xc - integral(v_xc rho_in) + E_nn      (Harris-Foulkes)
  minus the model's energy_offset_hartree (its mean E_HF - E_SCF on validation frames, a constant)
  with smearing at electronic temperature T the energy is the Mermin free energy E_HF - k T S
  forces: PySCF's analytic RKS gradient on the one-shot orbitals (route a), the
          consistent derivative of E_HF (route b, ``hf_forces``), or PySCF's gradient on the orbitals
          of the Fock matrix of the Anderson mixture after ``anderson_steps`` steps (route c,
          ``forces='anderson'``, which serves E_HF of that mixture as energy, without the offset:
          both close to SCF, but the forces are not the exact derivative of the energy)
  dipole: after Anderson steps in the Coulomb metric (default 3, ``anderson``) or from P_out
          (``dipole='one-shot'``, the paper's; always in info['dipole_one_shot']); from rho_in as a
          cross-check; gap; residual |rho_out - rho_in|/N_e.

MPI (``parallel.world()``): every rank builds the molecule and grid, works on its slice of the
grid (``partition_grid``), and the grid sums (electron count, Coulomb right-hand side, V_xc and
E_xc, residual, dipole, XC force terms) are reduced; rank 0 diagonalizes and broadcasts. Serial
runs are the one-rank case of the same code.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from pyscf import df, gto
from pyscf.dft import numint
from pyscf.dft.gen_grid import make_mask
from pyscf.grad import rks as rks_grad

from ipi_jlcdm.electronic.anderson import (
    DEFAULT_ANDERSON_GRID_LEVEL,
    DEFAULT_ANDERSON_STEPS,
    DIPOLE_ROUTES,
    anderson_steps,
    dipole_of,
)
from ipi_jlcdm.electronic.aux_potential import AuxiliaryPotentials
from ipi_jlcdm.electronic.density import (
    SMALL_RHO_CUTOFF,
    add_density_responses,
    density_from_phi,
    density_on_points,
    grid_points,
    kept_block,
    map_screened_ao_blocks,
    per_atom,
    sad_density_matrix,
    sad_density_on_points,
    significant_points,
)
from ipi_jlcdm.electronic.hf_forces import OneShotState, harris_foulkes_gradient, remove_net_force
from ipi_jlcdm.electronic.level import LevelOfTheory, becke_grids
from ipi_jlcdm.electronic.occupations import aufbau, fermi_dirac
from ipi_jlcdm.electronic.positivity import PositiveDensityMap
from ipi_jlcdm.electronic.results import EngineResult
from ipi_jlcdm.electronic.scf_engine import run_scf
from ipi_jlcdm.electronic.scratch import ScratchArrays
from ipi_jlcdm.jl import jl_kernels
from ipi_jlcdm.parallel import partition_grid, world
from ipi_jlcdm.threads import parallel_blas, serial_blas
from ipi_jlcdm.units import BOLTZMANN_HARTREE_PER_K

#: The force routes of docs/METHOD.md section 5: (a) orbital, (b) Harris-Foulkes, (c) after the Anderson steps.
FORCE_ROUTES = ("orbital", "harris-foulkes", "anderson")

#: The default route, chosen by force error and NVE drift: with the shipped uracil model route (b)
#: gives 9 / 27 meV/Å at 300 / 500 K where the orbital gradient gives 96 meV/Å at 500 K, and it
#: conserves the energy it serves (docs/VALIDATION.md). Route (a) needs only the model's density; (b)
#: also its atom derivatives (``deformation_density_vjp``), which every JLCDModel has.
DEFAULT_FORCE_ROUTE = "harris-foulkes"

#: Revision of the one-shot numbers for a given model file: bumped when the engine's energies,
#: forces or dipoles change for the same coefficients (stored results name it). 1: without, 2: with
#: the positivity map on rho_in (ipi_jlcdm/electronic/positivity.py).
ENGINE_REVISION = 2


class OneShotEngine:
    """Non-self-consistent Kohn-Sham step from a deformation-density source (usually a JLCDModel).

    level: level of theory (its grid_level sets the grid). ``compute`` takes atomic numbers
    (natm,) and coordinates (natm, 3) in bohr and returns an EngineResult in atomic units.
    """

    name = "jlcdm"

    def __init__(self, source, level: LevelOfTheory, compute_forces: bool = True, comm=None,
                 fallback_residual: float | None = None, fallback_conv_tol: float = 1e-9,
                 electronic_temperature_k: float = 0.0, forces: str = DEFAULT_FORCE_ROUTE, dipole: str = "anderson",
                 anderson_steps: int = DEFAULT_ANDERSON_STEPS,
                 anderson_grid_level: int | None = DEFAULT_ANDERSON_GRID_LEVEL,
                 small_rho_cutoff: float = SMALL_RHO_CUTOFF):
        """``fallback_residual``: above this residual (integral |rho_out - rho_in| / N_e) the step
        is recomputed by SCF started from P_out and flagged (info['fallback'] = 1); None: never.
        ``electronic_temperature_k`` > 0: Fermi-Dirac occupations (energy = free energy).
        ``forces``: 'orbital' (route a: PySCF's gradient on the one-shot orbitals), 'harris-foulkes'
        (route b, the default: the consistent derivative of the energy this engine returns, ``hf_forces``) or
        'anderson' (route c: PySCF's gradient on the orbitals of the Fock matrix of the Anderson
        mixture after ``anderson_steps`` steps, and the Harris-Foulkes energy of that mixture as input
        density; not its exact derivative). info['energy_one_shot']: E_HF[rho_in] minus the offset.
        ``dipole``: 'anderson' (``anderson_steps`` Anderson steps in the Coulomb metric from the
        one-shot step, one more Fock build each: ``anderson``) or 'one-shot' (P_out's).
        ``small_rho_cutoff`` (electrons): the step integrates over the grid points with |rho_SAD w| >=
        small_rho_cutoff / n_grid only (``density.significant_points``, PySCF's criterion); 0: all."""
        if forces not in FORCE_ROUTES:
            raise ValueError(f"unknown forces {forces!r}; choose from {FORCE_ROUTES}")
        if dipole not in DIPOLE_ROUTES:
            raise ValueError(f"unknown dipole {dipole!r}; choose from {DIPOLE_ROUTES}")
        self.dipole = dipole
        if anderson_steps < 1:
            raise ValueError(f"anderson_steps must be >= 1, got {anderson_steps}")
        self.anderson_steps = anderson_steps
        if anderson_grid_level is not None and not 0 <= anderson_grid_level <= 9:
            raise ValueError(f"anderson_grid_level must be a PySCF grid level 0-9, got {anderson_grid_level}")
        self.anderson_grid_level = anderson_grid_level
        if small_rho_cutoff < 0:
            raise ValueError(f"small_rho_cutoff must be >= 0, got {small_rho_cutoff}")
        self.small_rho_cutoff = small_rho_cutoff
        self.forces = forces
        self.source = source
        self.level = level
        self.compute_forces = compute_forces
        self.comm = comm if comm is not None else world()
        self.fallback_residual = fallback_residual
        self.fallback_conv_tol = fallback_conv_tol
        self.electronic_temperature_k = electronic_temperature_k
        self.timings: dict[str, float] = {}
        self.scratch = ScratchArrays()  # the 3-centre integrals' memory, reused by every step

    def compute(self, atomic_numbers: np.ndarray, coords_bohr: np.ndarray, key: int = 0) -> EngineResult:
        """The one-shot step (energy, forces, dipole, gap) at coordinates (natm, 3) bohr; BLAS on one
        thread between the grid passes (``threads.serial_blas``)."""
        with serial_blas():
            return self._compute(atomic_numbers, coords_bohr)

    def _compute(self, atomic_numbers: np.ndarray, coords_bohr: np.ndarray) -> EngineResult:
        check = getattr(self.source, "check_compatible", None)
        if check is not None:
            check(atomic_numbers)  # fail fast, naming unknown elements
        timer = _StageTimer()
        mol = self.level.make_mol(atomic_numbers, coords_bohr)
        comm = self.comm
        grids = self.level.make_grids(mol)
        coords, weights = grid_points(grids)
        n_grid = len(weights)
        r_cut = getattr(getattr(self.source, "hyper", None), "r_cut", 0.0)
        mine = partition_grid(coords, mol.atom_coords(), r_cut, comm.size)[comm.rank]
        coords, weights = coords[mine], weights[mine]
        n_elec = mol.nelectron
        dm_sad = sad_density_matrix(mol)
        timer.lap("grid")

        rho_sad = sad_density_on_points(mol, coords)
        if self.small_rho_cutoff > 0:  # every grid pass of the step runs over the points kept here
            kept = significant_points(rho_sad[0], weights, n_grid, self.small_rho_cutoff)
            coords, weights, rho_sad = coords[kept], weights[kept], rho_sad[:, kept]
        timer.lap("rho_sad")
        consistent = self.compute_forces and self.forces == "harris-foulkes"
        envelope, model_pairs = None, None
        if consistent and hasattr(self.source, "deformation_density_with_response"):
            drho, grad_drho, envelope, model_pairs = self.source.deformation_density_with_response(
                coords, mol.atom_charges(), mol.atom_coords(), rho_sad)
        else:
            drho, grad_drho = self.source.deformation_density(coords, mol.atom_charges(), mol.atom_coords(), True,
                                                              rho_sad=rho_sad)
        positivity = PositiveDensityMap.build(rho_sad, drho, grad_drho)  # rho_in >= X_FLOOR rho_SAD
        drho, grad_drho = positivity.deformation, positivity.deformation_gradient
        timer.lap("model")
        rho_in = rho_sad.copy()
        rho_in[0] += drho
        rho_in[1:4] += grad_drho.T
        scale = n_elec / comm.allreduce_sum(float(weights @ rho_in[0]))
        rho_in *= scale

        coulomb = _coulomb_fit(mol, self.level.auxbasis, dm_sad, coords, weights, drho, scale, comm,
                               grad_drho if consistent else None, self.scratch)
        timer.lap("coulomb")
        xc = _xc_terms(mol, self.level.xc, coords, weights, rho_in, comm)[0]
        timer.lap("xc")

        hcore = mol.intor_symmetric("int1e_kin") + mol.intor_symmetric("int1e_nuc")
        overlap = mol.intor_symmetric("int1e_ovlp")
        fock = hcore + coulomb.j_matrix + xc.v_matrix
        mo_energy, mo_coeff = comm.bcast(scipy.linalg.eigh(fock, overlap) if comm.rank == 0 else None)
        n_occ = n_elec // 2
        mo_occ, smearing = self._occupations(mo_energy, n_elec)
        dm_out = (mo_coeff * mo_occ) @ mo_coeff.T
        timer.lap("diagonalize")

        e_band = float(mo_occ @ mo_energy)
        offset = float(getattr(self.source, "energy_offset_hartree", 0.0))  # the model's calibration
        energy = e_band - coulomb.e_hartree + xc.e_xc - xc.v_rho + mol.energy_nuc() - smearing - offset
        energy_one_shot = energy  # route (c) serves E_HF of the Anderson mixture instead (no offset)
        if consistent:  # the force passes evaluate rho_out too: use it for the residual
            state = OneShotState(coords, weights, rho_in, rho_sad, scale, dm_sad, dm_out, mo_energy, mo_coeff,
                                 mo_occ, coulomb, envelope, positivity, model_pairs)
            hf_gradient, rho_out = harris_foulkes_gradient(mol, self.level.xc, state, self.source, comm, timer.lap,
                                                           self.scratch)
        elif self.compute_forces and self.forces == "orbital":
            xc_gradient, rho_out = _xc_gradient(mol, self.level.xc, coords, weights, dm_out)
            timer.lap("forces")
        else:
            rho_out = density_on_points(mol, dm_out, coords, gradient=True)
        grid_sums = comm.allreduce_sum(np.concatenate([[weights @ np.abs(rho_out[0] - rho_in[0])],
                                                        (weights * rho_in[0]) @ coords]))
        residual = float(grid_sums[0]) / n_elec
        dipole_one_shot = dipole_of(mol, dm_out)
        dipole_rho_in = mol.atom_charges() @ mol.atom_coords() - grid_sums[1:4]
        timer.lap("observables")
        if self.fallback_residual is not None and residual > self.fallback_residual:
            return self._scf_fallback(mol, grids, dm_out, residual, scale, timer)
        dipole, theta = dipole_one_shot, 0.0
        route_c = self.forces == "anderson"  # its energy too, with or without forces
        if self.dipole == "anderson" or route_c:
            a_coords, a_weights, a_rho_out = self._anderson_grid(mol, coords, weights, rho_out)
            mixture = anderson_steps(
                mol, lambda rho, *extra: _xc_terms(mol, self.level.xc, a_coords, a_weights, rho, comm, *extra),
                coulomb, hcore, overlap, dm_out, a_rho_out, lambda e: self._occupations(e, n_elec)[0], comm,
                self.anderson_steps, orbitals=route_c)
            if self.dipole == "anderson":
                dipole, theta = dipole_of(mol, mixture.dm), mixture.theta
            timer.lap("anderson")
        if route_c:  # E_HF with the Anderson mixture as input density (no offset)
            mix = mixture.fock
            energy = (float(mix.mo_occ @ mix.mo_energy) - mix.e_hartree + mix.e_xc - mix.v_rho + mol.energy_nuc()
                      - self._occupations(mix.mo_energy, n_elec)[1])

        forces = np.zeros((mol.natm, 3))
        if consistent:  # no net force: see hf_forces.remove_net_force
            forces = remove_net_force(-hf_gradient)
        elif route_c and self.compute_forces:  # route (a)'s formula on the mixture's orbitals
            xc_gradient = _xc_gradient(mol, self.level.xc, coords, weights,
                                       (mix.mo_coeff * mix.mo_occ) @ mix.mo_coeff.T)[0]
            forces = self._forces(mol, grids, coords, weights, mix.mo_energy, mix.mo_coeff, mix.mo_occ, energy,
                                  xc_gradient)
        elif self.compute_forces:
            forces = self._forces(mol, grids, coords, weights, mo_energy, mo_coeff, mo_occ, energy, xc_gradient)
        timer.lap("forces")
        self.timings = timer.stages
        self.last = {"mol": mol, "dm_out": dm_out, "mo_energy": mo_energy, "mo_coeff": mo_coeff, "mo_occ": mo_occ}
        result = EngineResult(
            energy=float(energy), forces=forces, dipole=dipole, gap=float(mo_energy[n_occ] - mo_energy[n_occ - 1]),
            residual=residual,
            info={"density_scale": scale, "dipole_rho_in": dipole_rho_in.tolist(),
                  "dipole_one_shot": dipole_one_shot.tolist(), "anderson_theta": theta, "e_band": e_band,
                  "n_grid": float(len(weights)), "fallback": 0, "energy_one_shot": energy_one_shot},
        )
        result.check_finite()
        return result

    def _anderson_grid(self, mol, coords, weights, rho_out):
        """This rank's points (npts, 3) bohr, weights and rho[P_out] with its gradient (4, npts) on
        the grid of the Anderson steps: the step's own, or a grid at ``anderson_grid_level`` (then
        None for rho[P_out]: the first Anderson step computes it in its own AO pass)."""
        if (self.anderson_grid_level is None or self.anderson_grid_level >= self.level.grid_level
                or self.forces == "anderson"):  # route (c)'s energy and forces come from the mixture
            return coords, weights, rho_out
        grids = becke_grids(mol, self.anderson_grid_level)
        a_coords, a_weights = grid_points(grids)
        mine = partition_grid(a_coords, mol.atom_coords(), 0.0, self.comm.size)[self.comm.rank]
        return a_coords[mine], a_weights[mine], None

    def _occupations(self, mo_energy: np.ndarray, n_elec: int) -> tuple[np.ndarray, float]:
        """Occupations (nmo,) and the smearing term k T S (Ha; 0 for aufbau)."""
        if self.electronic_temperature_k <= 0:
            return aufbau(mo_energy, n_elec), 0.0
        mo_occ, _, entropy = fermi_dirac(mo_energy, n_elec, self.electronic_temperature_k)
        return mo_occ, BOLTZMANN_HARTREE_PER_K * self.electronic_temperature_k * entropy

    def _forces(self, mol, grids, coords, weights, mo_energy, mo_coeff, mo_occ, energy, xc_gradient) -> np.ndarray:
        """Forces (natm, 3) Ha/bohr, route (a): the analytic RKS gradient on the one-shot orbitals.

        ``xc_gradient``: the XC term over this rank's points (``_xc_gradient``); rank 0 adds every
        other term from PySCF's DF-RKS gradient evaluated on an empty grid; the sum is reduced.
        """
        gradient = xc_gradient.copy()
        if self.comm.rank == 0:
            no_grid = _grid_slice(grids, mol, coords[:0], weights[:0])
            gradient += _rks_gradient_on_orbitals(self.level, mol, no_grid, mo_energy, mo_coeff, mo_occ, energy)
        return -self.comm.allreduce_sum(gradient)

    def _scf_fallback(self, mol, grids, dm_out, residual, scale, timer) -> EngineResult:
        """SCF + gradient started from the one-shot density matrix (every rank runs the same SCF)."""
        try:
            with parallel_blas():
                result, mf = run_scf(self.level, mol, dm_out, self.fallback_conv_tol, grids=grids,
                                     compute_forces=self.compute_forces)
        except RuntimeError as err:
            raise RuntimeError(f"fallback SCF failed (one-shot residual {residual:.3f}): {err}") from err
        timer.lap("fallback_scf")
        self.timings = timer.stages
        self.last = {"mol": mol, "dm_out": mf.make_rdm1(), "mo_energy": mf.mo_energy, "mo_coeff": mf.mo_coeff,
                     "mo_occ": mf.mo_occ}
        result.residual = residual
        result.info.update(density_scale=scale, fallback=1)
        return result


class _StageTimer:
    def __init__(self):
        self.stages: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = self.stages.get(name, 0.0) + now - self._t
        self._t = now


@dataclass
class CoulombFit:
    """The Coulomb-metric fit of rho_in and what the consistent forces reuse.

    fit: d = (P|Q)^-1 (Q|rho_in) (naux,); rhs: (Q|rho_in) (naux,), both including the density scale;
    int3c (nao, nao, naux), metric_factor: Cholesky factor of (P|Q); potentials: the auxiliary
    functions' Coulomb potentials (``aux_potential.AuxiliaryPotentials``) and active: this rank's
    points where drho != 0 (indices); with the consistent forces rhs_gradient (naux, 3) =
    sum_g w_g V_Q(r_g) grad drho(r_g) (unscaled).
    """

    auxmol: gto.Mole
    int3c: np.ndarray
    metric_factor: tuple
    rhs: np.ndarray
    fit: np.ndarray
    j_matrix: np.ndarray
    e_hartree: float
    potentials: AuxiliaryPotentials
    active: np.ndarray
    rhs_gradient: np.ndarray | None = None

    def projection(self, dm: np.ndarray) -> np.ndarray:
        """(Q|rho[dm]) (naux,) of a density matrix (nao, nao) (``three_centre_projection``)."""
        return three_centre_projection(self.int3c, dm)

    def coulomb_matrix(self, coefficients: np.ndarray) -> np.ndarray:
        """sum_Q (mu nu|Q) c_Q (nao, nao) of auxiliary coefficients c (naux,)."""
        return three_centre_matrix(self.int3c, coefficients)


def _three_centre_rows(int3c: np.ndarray) -> np.ndarray:
    """(mu nu|Q) (nao, nao, naux) as (nao * nao, naux), row mu + nao nu: a view of libcint's
    Fortran-ordered array (a copy of any other)."""
    nao = int3c.shape[0]
    return int3c.reshape(nao * nao, -1, order="F")


def three_centre_projection(int3c: np.ndarray, dm: np.ndarray) -> np.ndarray:
    """sum_{mu nu} (mu nu|Q) P_{mu nu} (naux,): one BLAS matrix-vector product (np.einsum over the
    same array took 5x as long on uracil)."""
    return dm.reshape(-1, order="F") @ _three_centre_rows(int3c)


def three_centre_matrix(int3c: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """sum_Q (mu nu|Q) c_Q (nao, nao)."""
    nao = int3c.shape[0]
    return (_three_centre_rows(int3c) @ coefficients).reshape(nao, nao, order="F")


def _coulomb_fit(mol: gto.Mole, auxbasis: str, dm_sad: np.ndarray, coords: np.ndarray, weights: np.ndarray,
                 drho: np.ndarray, scale: float, comm, grad_drho: np.ndarray | None = None,
                 scratch: ScratchArrays | None = None) -> CoulombFit:
    """Density fitting of rho_in = scale (rho_SAD + drho) in the Coulomb metric (split fit).

    (Q|rho_SAD) is exact from P_SAD; (Q|drho) = sum_g w_g drho_g V_Q(r_g), only over points where
    drho is non-zero (the model vanishes beyond r_cut of every atom), with V_Q in closed form
    (``aux_potential``). Given ``grad_drho`` (npts, 3) sum_g w_g V_Q grad drho is formed in the same
    pass (for the consistent forces). ``scratch``: where the 3-centre integrals go (reused memory;
    default a new array).
    """
    auxmol = df.addons.make_auxmol(mol, auxbasis)
    out = None if scratch is None else scratch.take("int3c2e", mol.nao * mol.nao * auxmol.nao)
    int3c = df.incore.aux_e2(mol, auxmol, "int3c2e", aosym="s1", out=out)  # (nao, nao, naux)
    metric_factor = scipy.linalg.cho_factor(auxmol.intor("int2c2e"))
    potentials = AuxiliaryPotentials(auxmol)
    active = np.nonzero(drho * weights)[0]
    channels = [weights[active] * drho[active]]
    if grad_drho is not None:
        channels.extend((weights[active, None] * grad_drho[active]).T)
    sums = comm.allreduce_sum(potentials.rhs(coords[active], np.array(channels)))
    rhs = scale * (three_centre_projection(int3c, dm_sad) + sums[0])
    rhs_gradient = sums[1:4].T.copy() if grad_drho is not None else None
    fit = scipy.linalg.cho_solve(metric_factor, rhs)
    j_matrix = three_centre_matrix(int3c, fit)
    return CoulombFit(auxmol, int3c, metric_factor, rhs, fit, j_matrix, 0.5 * float(fit @ rhs), potentials, active,
                      rhs_gradient)


class _XCTerms:
    def __init__(self, v_matrix: np.ndarray, e_xc: float, v_rho: float):
        self.v_matrix, self.e_xc, self.v_rho = v_matrix, e_xc, v_rho


def _xc_terms(mol: gto.Mole, xc: str, coords: np.ndarray, weights: np.ndarray, rho_in: np.ndarray | None, comm,
              extra_dm: np.ndarray | None = None, extra_weight: float = 0.0) -> tuple[_XCTerms, np.ndarray | None]:
    """E_xc[rho], V_xc matrix and integral v_xc rho (= Tr(V_xc P) for rho = rho[P]) for a GGA.

    rho_in: (4, ngrid) density and gradient (None: zero). Follows PySCF's nr_rks quadrature. With
    ``extra_dm`` (nao, nao) symmetric, the terms are those of rho = rho_in + extra_weight
    rho[extra_dm], and rho[extra_dm] (4, ngrid) comes back too, from the same AO pass (the Anderson
    steps); else None.
    """
    ni = numint.NumInt()
    extra = np.empty((4, len(coords))) if extra_dm is not None else None

    def block(sl, ao, kept):
        ao_t = ao.transpose(0, 2, 1)  # (4, n_kept, blk): eval_ao's own layout, points contiguous
        rho = 0.0 if rho_in is None else rho_in[:, sl]
        if extra is not None:
            phi_dm = kept_block(extra_dm, kept) @ ao_t[0]
            extra[:, sl] = density_from_phi(ao_t, phi_dm)
            rho = rho + extra_weight * extra[:, sl]
        exc, vxc = ni.eval_xc_eff(xc, rho, deriv=1, xctype="GGA")[:2]
        w = weights[sl]
        wv = vxc * w
        wv[0] *= 0.5
        scaled = jl_kernels.scaled_ao(ao_t, np.ascontiguousarray(wv[None]))[0]  # (n_kept, blk)
        return kept, ao_t[0] @ scaled.T, float(w @ (rho[0] * exc)), float(np.einsum("xg,xg,g->", vxc, rho, w))

    parts = map_screened_ao_blocks(block, mol, coords, 1)
    v_matrix = np.zeros((mol.nao, mol.nao))
    for kept, part, _, _ in parts:
        v_matrix[np.ix_(kept, kept)] += part
    e_xc, v_rho = sum(p[2] for p in parts), sum(p[3] for p in parts)
    sums = comm.allreduce_sum(np.concatenate([v_matrix.ravel(), [e_xc, v_rho]]))
    v_matrix = sums[:-2].reshape(mol.nao, mol.nao)
    return _XCTerms(v_matrix + v_matrix.T, float(sums[-2]), float(sums[-1])), extra


def _grid_slice(grids, mol, coords: np.ndarray, weights: np.ndarray):
    """A copy of a PySCF grid holding only the given points (what PySCF's gradient integrates over)."""
    part = copy.copy(grids)
    part.coords, part.weights = coords, weights
    part.non0tab = make_mask(mol, coords)
    part.screen_index = part.non0tab
    return part


def _xc_gradient(mol, xc: str, coords: np.ndarray, weights: np.ndarray, dm: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """XC (Hellmann-Feynman) term of the GGA nuclear gradient dE_xc/dR over the given points,
    (natm, 3) Ha/bohr, without grid response (as PySCF's RKS gradient), and the density of ``dm``
    and its gradient at the points (4, npts), which the pass computes anyway:

        dE/dR_Ax = -2 sum_{mu in A} sum_g [ d_x phi_mu (T P)_mu + sum_j d_x d_j phi_mu w v_j (phi P)_mu ]
        T = w v_rho phi + sum_j w v_j d_j phi,   v_j = dE_xc/d(d_j rho)

    Contracting with P before summing over AOs needs two matrix products per block instead of
    PySCF's three nao x nao derivative matrices (the same numbers, ~2x faster).
    """
    ni = numint.NumInt()
    density = np.empty((4, len(coords)))

    def block(sl, ao, kept):
        dm_kept = kept_block(dm, kept)
        ao_t = ao.transpose(0, 2, 1)  # (10, n_kept, blk), points contiguous
        phi = dm_kept @ ao_t[0]
        rho = density_from_phi(ao_t, phi)
        density[:, sl] = rho
        wv = ni.eval_xc_eff(xc, rho, deriv=1, xctype="GGA")[1] * weights[sl]
        part = np.zeros((1, 3, len(kept)))
        add_density_responses(part, ao, [dm_kept], wv[None], [phi])
        return kept, part[0]

    per_ao = np.zeros((3, mol.nao))
    for kept, part in map_screened_ao_blocks(block, mol, coords, 2):
        per_ao[:, kept] += part
    return per_atom(mol, per_ao), density


def _pyscf_xc_gradient(mol, xc: str, grids, dm: np.ndarray) -> np.ndarray:
    """The same term the way PySCF's grad_elec forms it (reference for tests)."""
    _, vxc = rks_grad.get_vxc(numint.NumInt(), mol, grids, xc, dm)
    gradient = np.zeros((mol.natm, 3))
    for atom, (_, _, p0, p1) in enumerate(mol.aoslice_by_atom()):
        gradient[atom] = 2.0 * np.einsum("xij,ij->x", vxc[:, p0:p1], dm[p0:p1])
    return gradient


def _rks_gradient_on_orbitals(level: LevelOfTheory, mol, grids, mo_energy, mo_coeff, mo_occ, energy) -> np.ndarray:
    """PySCF's analytic (density-fitted) RKS nuclear gradient evaluated on given orbitals, (natm, 3) Ha/bohr."""
    mf = level.make_rks(mol, grids)
    mf.mo_energy, mf.mo_coeff, mf.mo_occ = mo_energy, mo_coeff, mo_occ
    mf.e_tot, mf.converged = energy, True
    grad = mf.nuc_grad_method()
    grad.verbose = 0
    return np.asarray(grad.kernel())
