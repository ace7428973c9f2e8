"""Jacobi-Legendre (JL) descriptor of a grid point and the contracted linear-model prediction.

docs/METHOD.md section 4. For a grid point g and atoms i within r_cut:
  D1^Z_n(g)          = sum_{i in Z} J1_n(r_gi)                                  n = 1..n1
  D2^{ZZ'}_{nn'l}(g) = sum_{i in Z} sum_{j in Z', j != i} J2_n(r_gi) J2_n'(r_gj) P_l(cos theta_ij)
                     = sum_m A^Z_{nlm} A^Z'_{n'lm} - delta_ZZ' sum_{i in Z} J2_n(r_gi) J2_n'(r_gi)
with A^Z_{nlm}(g) = sum_{i in Z} J2_n(r_gi) S_lm(u_gi) (Racah-normalized real harmonics, so the
addition theorem has no prefactor) and n = 2..n2. Species pairs with Z = Z' keep n <= n'; pairs
Z < Z' keep all (n, n').

Lengths in bohr. Work is chunked over points (``chunk_size``). Predictions and atom derivatives
run by default through the compiled kernels of ``jl_kernels`` (pair terms and derivatives) around
one BLAS product per l for the contraction with the coefficients, one chunk per thread
(``threads``), the points grouped by the species within r_cut of them so that each chunk
contracts only those species' blocks; the numpy implementation below (``compiled=False``), vectorized over the
(point, atom) pairs of a chunk, is the reference the tests compare them with, and the training
path (``features``). Memory per chunk is O(chunk_size * atoms * (n1 + n2 * (l_max+1)^2)),
independent of the number of points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipi_jlcdm.jl import jl_kernels
from ipi_jlcdm.jl.harmonics import gradient_operator, l_of_index, n_lm, solid_harmonics
from ipi_jlcdm.jl.jacobi import jacobi_polynomials, radial_one_body, radial_two_body
from ipi_jlcdm.threads import chunk_map
from ipi_jlcdm.units import ANGSTROM_PER_BOHR, BOHR_PER_ANGSTROM

_TINY_DISTANCE = 1e-12  # bohr; below this the direction of a point from an atom is undefined

#: Points per chunk: the numpy reference keeps a chunk's dense (point, atom) arrays in cache (256
#: measured 3x faster than 2048). The compiled pass: a model pass and a displaced VJP pass over
#: uracil's grid on 2 threads took 1.91 + 1.67 s in chunks of 128 points, 1.67 + 1.49 s at 256,
#: 1.80 + 1.48 s at 512 and 2.09 + 1.92 s at 1024 (docs/PERFORMANCE.md).
NUMPY_CHUNK = 256
COMPILED_CHUNK = 256


@dataclass(frozen=True)
class JLHyperparameters:
    """JL hyperparameters (lengths in bohr). ``alpha2``/``beta2`` default to ``alpha``/``beta``."""

    r_cut: float = 3.5 * BOHR_PER_ANGSTROM
    n1: int = 25
    n2: int = 10
    l_max: int = 5
    alpha: float = 7.0
    beta: float = 0.0
    r_min: float = -0.8 * BOHR_PER_ANGSTROM
    alpha2: float | None = None
    beta2: float | None = None

    def __post_init__(self):
        if self.r_cut <= 0 or self.r_min >= self.r_cut:
            raise ValueError("need r_min < r_cut and r_cut > 0")
        if self.n1 < 1 or self.n2 < 2 or self.l_max < 0:
            raise ValueError("need n1 >= 1, n2 >= 2, l_max >= 0")
        for a in (self.alpha, self.beta, self.alpha2, self.beta2):
            if a is not None and a <= -1:
                raise ValueError("Jacobi parameters alpha, beta must be > -1")

    @property
    def a2(self) -> float:
        return self.alpha if self.alpha2 is None else self.alpha2

    @property
    def b2(self) -> float:
        return self.beta if self.beta2 is None else self.beta2

    def to_dict(self) -> dict:
        """JSON-friendly, lengths in angstrom with the unit in the key."""
        return {"r_cut_angstrom": self.r_cut * ANGSTROM_PER_BOHR, "r_min_angstrom": self.r_min * ANGSTROM_PER_BOHR,
                "n1": self.n1, "n2": self.n2, "l_max": self.l_max, "alpha": self.alpha, "beta": self.beta,
                "alpha2": self.alpha2, "beta2": self.beta2}

    @classmethod
    def from_dict(cls, d: dict) -> JLHyperparameters:
        return cls(r_cut=float(d["r_cut_angstrom"]) * BOHR_PER_ANGSTROM,
                   r_min=float(d["r_min_angstrom"]) * BOHR_PER_ANGSTROM,
                   n1=int(d["n1"]), n2=int(d["n2"]), l_max=int(d["l_max"]),
                   alpha=float(d["alpha"]), beta=float(d["beta"]),
                   alpha2=None if d.get("alpha2") is None else float(d["alpha2"]),
                   beta2=None if d.get("beta2") is None else float(d["beta2"]))


@dataclass
class _ChunkGeometry:
    """Pair data of one chunk of points (see ``JLDescriptor._pair_terms``), A^Z (nlm, c, nsp*nr2),
    the 2-body radial functions and their r-derivatives on dense (point, atom) arrays
    radial_dense (c, natm, 2, nr2) (zero beyond r_cut) and the atoms of each species present."""

    c: int
    natm: int
    p_idx: np.ndarray
    a_idx: np.ndarray
    pair_species: np.ndarray
    r: np.ndarray
    unit: np.ndarray
    j1: np.ndarray
    dj1: np.ndarray
    j2: np.ndarray
    dj2: np.ndarray
    s: np.ndarray
    amp: np.ndarray
    radial_dense: np.ndarray
    species_atoms: list


@dataclass
class _SpeciesBlocks:
    """What the compiled kernels need for points that see the species ``present`` (indices into the
    model's species) within r_cut: the model's species renumbered among them (-1 for the others),
    and per channel the coefficients of those species' blocks: stacked[l] (K_P, nch K_P) for the
    contraction, one_body (nch, nP, n1), self_term (nch, nP, nr2, nr2). Made once per pass and group."""

    local_species: np.ndarray
    stacked: list
    one_body: np.ndarray
    self_term: np.ndarray


@dataclass
class _Chunk:
    """A chunk of a pass's points: their indices; for the compiled kernels also the species blocks
    of the species near them and the pass's CSR pair list (offsets, atoms: ``jl_kernels.pair_list``)."""

    points: np.ndarray
    blocks: _SpeciesBlocks | None = None
    pairs: tuple | None = None


@dataclass
class ContractedCoefficients:
    """Model coefficients arranged for prediction without building features.

    one_body: (nsp, n1); two_body: (l_max+1, K, K) symmetric, K = nsp * (n2-1), index s*(n2-1)+n;
    self_term: (nsp, n2-1, n2-1) = sum_l two_body[l] diagonal species blocks (the i = j term).
    """

    one_body: np.ndarray
    two_body: np.ndarray
    self_term: np.ndarray


@dataclass
class PairDerivatives:
    """The atom derivatives of a prediction pass, kept per (point, atom) pair within r_cut: for each
    mixing m of the pass, g (nmix, npair, 3) with d(sum_k m_k f_k)(point)/d R_atom = -g of the pair;
    point (npair,) indexes the pass's points, atom (npair,) the atoms."""

    point: np.ndarray
    atom: np.ndarray
    g: np.ndarray

    def contract(self, weights: np.ndarray, natm: int) -> np.ndarray:
        """sum_points sum_mix weights[mix, point] d f_mix(point) / d R: (natm, 3) for weights (nmix, npts)."""
        weights = np.ascontiguousarray(weights, dtype=float)
        return -jl_kernels.weighted_pair_sum(weights, self.point, self.atom, self.g, natm)


class JLDescriptor:
    """JL features for a fixed list of species (atomic numbers, sorted)."""

    def __init__(self, hyper: JLHyperparameters, species: list[int], chunk_size: int | None = None,
                 compiled: bool = True):
        """``compiled``: predictions and atom derivatives by the numba kernels of ``jl_kernels``
        (default) or by the numpy reference implementation of this module (the tests compare the
        two). ``chunk_size``: points per chunk (default 1024 compiled, 256 numpy: the sizes measured
        fastest)."""
        self.hyper = hyper
        self.species = sorted(int(z) for z in species)
        if len(set(self.species)) != len(self.species):
            raise ValueError("species must be unique")
        self.compiled = compiled
        self.chunk_size = chunk_size or (COMPILED_CHUNK if compiled else NUMPY_CHUNK)
        self.nsp = len(self.species)
        self.nr2 = hyper.n2 - 1
        self.nlm = n_lm(hyper.l_max)
        self._l_index = l_of_index(hyper.l_max)
        self._harmonic_gradient = gradient_operator(hyper.l_max)  # (3, nlm, nlm)
        # the three operators side by side (nlm, 3 nlm): JB D_x, JB D_y, JB D_z in one product
        self._harmonic_gradient_all = np.concatenate(list(self._harmonic_gradient), axis=1)
        self._build_layout()
        # Jacobi polynomials at the ends of [-1, 1], for the compiled kernels' radial functions
        self._p1_minus = jacobi_polynomials(hyper.n1, hyper.alpha, hyper.beta, np.array(-1.0))
        ends = jacobi_polynomials(hyper.n2, hyper.a2, hyper.b2, np.array([-1.0, 1.0]))
        self._p2_minus, self._p2_plus = np.ascontiguousarray(ends[:, 0]), np.ascontiguousarray(ends[:, 1])
        self._rec1 = jl_kernels.jacobi_recurrence(hyper.n1, hyper.alpha, hyper.beta)
        self._rec2 = jl_kernels.jacobi_recurrence(hyper.n2, hyper.a2, hyper.b2)
        self._hrec = jl_kernels.harmonic_recurrence(hyper.l_max)

    # ---------------------------------------------------------------- layout
    def _build_layout(self) -> None:
        """Feature order: 1-body (s, n); then for s <= t, l: (n, n') pairs (n <= n' if s == t)."""
        blocks, rows = [], []
        for s in range(self.nsp):
            for t in range(s, self.nsp):
                if s == t:
                    n_a, n_b = np.triu_indices(self.nr2)
                else:
                    n_a, n_b = (g.ravel() for g in np.indices((self.nr2, self.nr2)))
                for l in range(self.hyper.l_max + 1):
                    blocks.append((s, t, l, n_a, n_b))
                    rows.append(np.stack([np.full(n_a.size, s), np.full(n_a.size, t), np.full(n_a.size, l), n_a, n_b]))
        self._two_body_blocks = blocks
        self._two_body_index = np.concatenate(rows, axis=1)  # (5, n2body): s, t, l, n, n'
        self.n_one_body = self.nsp * self.hyper.n1
        self.n_features = self.n_one_body + self._two_body_index.shape[1]

    def feature_labels(self) -> list[tuple]:
        """One label per feature: ('1b', Z, n) or ('2b', Z, Z', l, n, n') with n counted as in
        docs/METHOD.md (1..n1 for J1, 2..n2 for J2)."""
        labels = [("1b", z, n) for z in self.species for n in range(1, self.hyper.n1 + 1)]
        s, t, l, n_a, n_b = self._two_body_index
        labels += [("2b", self.species[a], self.species[b], int(ll), int(na) + 2, int(nb) + 2)
                   for a, b, ll, na, nb in zip(s, t, l, n_a, n_b, strict=True)]
        return labels

    def species_indices(self, atomic_numbers: np.ndarray) -> np.ndarray:
        """Index into ``self.species`` of every atom; ValueError naming unknown elements."""
        lookup = {z: k for k, z in enumerate(self.species)}
        unknown = sorted({int(z) for z in atomic_numbers} - set(lookup))
        if unknown:
            raise ValueError(f"the model knows elements Z={self.species} but the molecule has Z={unknown}")
        return np.array([lookup[int(z)] for z in atomic_numbers])

    def contract(self, coefficients: np.ndarray) -> ContractedCoefficients:
        """Arrange a coefficient vector (n_features,) for ``predict``."""
        c = np.asarray(coefficients, dtype=float)
        if c.shape != (self.n_features,):
            raise ValueError(f"expected {self.n_features} coefficients, got {c.shape}")
        one = c[: self.n_one_body].reshape(self.nsp, self.hyper.n1)
        c2 = c[self.n_one_body:]
        s, t, l, n_a, n_b = self._two_body_index
        row, col = s * self.nr2 + n_a, t * self.nr2 + n_b
        k = self.nsp * self.nr2
        two = np.zeros((self.hyper.l_max + 1, k, k))
        diag = row == col
        np.add.at(two, (l[diag], row[diag], col[diag]), c2[diag])
        np.add.at(two, (l[~diag], row[~diag], col[~diag]), 0.5 * c2[~diag])
        np.add.at(two, (l[~diag], col[~diag], row[~diag]), 0.5 * c2[~diag])
        total = two.sum(axis=0)
        self_term = np.stack([total[a * self.nr2:(a + 1) * self.nr2, a * self.nr2:(a + 1) * self.nr2]
                              for a in range(self.nsp)])
        return ContractedCoefficients(one, two, self_term)

    # ---------------------------------------------------------------- per-atom radial/angular data
    def _chunks(self, n: int):
        for start in range(0, n, self.chunk_size):
            yield slice(start, min(start + self.chunk_size, n))

    # ---------------------------------------------------------------- features (training)
    def features(self, points: np.ndarray, atomic_numbers: np.ndarray, atom_coords: np.ndarray) -> np.ndarray:
        """Materialized features (npts, n_features) for points (npts, 3) bohr. Used for training
        on sampled points; prediction uses ``predict`` instead."""
        points = np.asarray(points, dtype=float)
        spec = self.species_indices(atomic_numbers)
        out = np.empty((len(points), self.n_features))
        for chunk in self._chunks(len(points)):
            out[chunk] = self._features_chunk(points[chunk], spec, np.asarray(atom_coords, float))
        return out

    def _features_chunk(self, points, spec, atom_coords) -> np.ndarray:
        c = len(points)
        p_idx, a_idx, _r, _unit, j1, _dj1, j2, _dj2, s = self._pair_terms(points, atom_coords)
        species_of_pair = spec[a_idx]
        one = np.zeros((c, self.nsp, self.hyper.n1))
        np.add.at(one, (p_idx, species_of_pair), j1)
        amp = np.zeros((c, self.nsp, self.nr2, self.nlm))
        np.add.at(amp, (p_idx, species_of_pair), j2[:, :, None] * s[:, None, :])
        pair_self = np.zeros((c, self.nsp, self.nr2, self.nr2))  # the i = j terms of the pair sums
        np.add.at(pair_self, (p_idx, species_of_pair), j2[:, :, None] * j2[:, None, :])
        cols = [one.reshape(c, -1)]
        atoms_per_species = np.bincount(spec, minlength=self.nsp)
        for s_, t_, l, n_a, n_b in self._two_body_blocks:
            if s_ == t_ and atoms_per_species[s_] < 2:  # no pair i != j: exactly zero, not rounding noise
                cols.append(np.zeros((c, n_a.size)))
                continue
            lm = slice(l * l, (l + 1) ** 2)
            block = np.einsum("cnm,cpm->cnp", amp[:, s_, :, lm], amp[:, t_, :, lm])
            if s_ == t_:
                block -= pair_self[:, s_]
            cols.append(block[:, n_a, n_b])
        return np.concatenate(cols, axis=1)

    # ---------------------------------------------------------------- contracted prediction
    def predict(self, points: np.ndarray, atomic_numbers: np.ndarray, atom_coords: np.ndarray,
                coefs: ContractedCoefficients, gradient: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Model density rho(g) (npts,) and, if ``gradient``, its gradient d rho / d r_g (npts, 3)."""
        rho, grad = self.predict_mixed(points, atomic_numbers, atom_coords, [coefs], None, gradient)
        return rho[0], grad

    def predict_mixed(self, points: np.ndarray, atomic_numbers: np.ndarray, atom_coords: np.ndarray,
                      coefs: list[ContractedCoefficients], mixing: np.ndarray | None = None, gradient: bool = True,
                      keep_pairs: bool = False
                      ) -> tuple[np.ndarray, np.ndarray | None] | tuple[np.ndarray, np.ndarray, PairDerivatives]:
        """Several linear models f_k on the same features at once: their values (nch, npts) and, if
        ``gradient``, the gradient (npts, 3) of sum_k m_k(g) f_k(g) at fixed mixing weights m
        (``mixing`` (nch, npts); default all ones). The pair terms, species sums and contractions are
        shared; each extra model costs one contraction. ``mixing`` (nmix, nch, npts) gives nmix
        gradients (nmix, npts, 3), one derivative pass each, from the same contractions. With
        ``keep_pairs`` (and ``gradient``) the pass's atom derivatives come back too, as the third item
        (PairDerivatives, one per mixing): the derivative pass forms them anyway."""
        points = np.asarray(points, dtype=float)
        spec = self.species_indices(atomic_numbers)
        if mixing is None:
            mixing = np.ones((len(coefs), len(points)))
        mixing = np.asarray(mixing, dtype=float)
        several = mixing.ndim == 3
        mixings = mixing if several else mixing[None]
        rho = np.zeros((len(coefs), len(points)))
        grad = np.zeros((len(mixings), len(points), 3)) if gradient else None
        keep_pairs = keep_pairs and gradient
        pair_points, pair_atoms, pair_g = [], [], []

        def run(chunk: _Chunk):
            return chunk, self._chunk(points, chunk, spec, atom_coords, coefs, mixings[:, :, chunk.points],
                                      gradient, keep_pairs)

        for chunk, (r, g, per_pair, p_idx, a_idx) in self._map(run, points, atom_coords, spec, coefs):
            rho[:, chunk.points] = r
            if gradient:
                grad[:, chunk.points] = g
            if keep_pairs:
                pair_points.append(chunk.points[p_idx])
                pair_atoms.append(a_idx)
                pair_g.append(np.asarray(per_pair))
        if gradient and not several:
            grad = grad[0]
        if keep_pairs:
            if not pair_points:  # no point has an atom within r_cut
                return rho, grad, PairDerivatives(np.zeros(0, int), np.zeros(0, int), np.zeros((len(mixings), 0, 3)))
            return rho, grad, PairDerivatives(np.concatenate(pair_points), np.concatenate(pair_atoms),
                                              np.concatenate(pair_g, axis=1))
        return rho, grad

    def atom_derivatives(self, points: np.ndarray, atomic_numbers: np.ndarray, atom_coords: np.ndarray,
                         coefs: ContractedCoefficients | list[ContractedCoefficients],
                         point_weights: np.ndarray | None = None) -> np.ndarray:
        """d rho(g) / d R_i: (npts, natm, 3), or with ``point_weights`` v (npts,) the contraction
        sum_g v_g d rho(g)/d R_i as (natm, 3) (memory bounded). With a list of models f_k and
        ``point_weights`` (nch, npts): sum_g sum_k v_k(g) d f_k(g)/d R_i in one pass."""
        points = np.asarray(points, dtype=float)
        spec = self.species_indices(atomic_numbers)
        natm = len(atomic_numbers)
        channels = coefs if isinstance(coefs, list) else [coefs]
        if point_weights is None:
            out = np.zeros((len(points), natm, 3))
            mixing = np.ones((len(channels), len(points)))
        else:
            out = np.zeros((natm, 3))
            mixing = np.asarray(point_weights, dtype=float).reshape(len(channels), len(points))

        def run(chunk: _Chunk):
            _, _, per_pair, p_idx, a_idx = self._chunk(points, chunk, spec, atom_coords, channels,
                                                       mixing[None, :, chunk.points], False, True, want_values=False)
            g_pair = per_pair[0]  # already carries the mixing weights
            if point_weights is None:
                return chunk, p_idx, a_idx, g_pair
            return chunk, None, None, np.stack([np.bincount(a_idx, weights=g_pair[:, x], minlength=natm)
                                                for x in range(3)], axis=1)

        for chunk, p_idx, a_idx, part in self._map(run, points, atom_coords, spec, channels):
            if point_weights is None:
                out[chunk.points[p_idx], a_idx] = -part
            else:
                out -= part
        return out

    def _map(self, function, points: np.ndarray, atom_coords: np.ndarray, spec: np.ndarray,
             channels: list[ContractedCoefficients]) -> list:
        """``function`` over the chunks of ``points`` (``_Chunk``): threads for the compiled kernels
        (``threads``), a plain loop for the numpy reference (whose BLAS products are threaded
        themselves)."""
        if not self.compiled:
            return [function(_Chunk(np.arange(chunk.start, chunk.stop))) for chunk in self._chunks(len(points))]
        return chunk_map(function, self._compiled_chunks(points, atom_coords, spec, channels))

    def _species_blocks(self, present: np.ndarray, channels: list[ContractedCoefficients]) -> _SpeciesBlocks:
        """The coefficients of the species ``present`` for the compiled kernels (``_SpeciesBlocks``)."""
        local_species = np.full(self.nsp, -1)
        local_species[present] = np.arange(len(present))
        columns = (present[:, None] * self.nr2 + np.arange(self.nr2)).ravel()
        stacked = [np.concatenate([coefs.two_body[l][np.ix_(columns, columns)] for coefs in channels], axis=1)
                   for l in range(self.hyper.l_max + 1)]
        return _SpeciesBlocks(local_species, stacked, np.array([coefs.one_body[present] for coefs in channels]),
                              np.array([coefs.self_term[present] for coefs in channels]))

    def _compiled_chunks(self, points: np.ndarray, atom_coords: np.ndarray, spec: np.ndarray,
                         channels: list[ContractedCoefficients]) -> list[_Chunk]:
        """The points grouped by the species within r_cut of them, in chunks of at most ``chunk_size``.

        A point's prediction only involves the species blocks of A (and of B = A C) of the species
        near it, so a chunk whose points all see the same species contracts only those blocks:
        B_P = A_P C_PP. On uracil's level-3 grid a quarter of the points see fewer than all four
        species (10 % see no atom: they are skipped, their values and derivatives are zero), and
        the contraction costs 77 % of the full one. Within a group the points keep their order."""
        points = np.ascontiguousarray(points, dtype=float)
        offsets, _, pair_atom = jl_kernels.pair_list(points, np.ascontiguousarray(atom_coords, dtype=float),
                                                      self.hyper.r_cut)
        patterns = jl_kernels.species_patterns(offsets, pair_atom, spec)
        order = np.argsort(patterns, kind="stable")
        sorted_patterns = patterns[order]
        cuts = np.flatnonzero(np.diff(sorted_patterns)) + 1
        chunks = []
        for begin, end in zip(np.r_[0, cuts], np.r_[cuts, len(points)], strict=True):
            pattern = int(sorted_patterns[begin]) if end > begin else 0
            if pattern == 0:
                continue
            blocks = self._species_blocks(np.array([a for a in range(self.nsp) if pattern >> a & 1]), channels)
            for start in range(begin, end, self.chunk_size):
                chunk_points = order[start:min(start + self.chunk_size, end)]
                chunks.append(_Chunk(chunk_points, blocks, (offsets, pair_atom)))
        return chunks

    def _chunk(self, points, chunk: _Chunk, spec, atom_coords, channels, mixings, want_grad: bool, want_atoms: bool,
               want_values: bool = True):
        """One chunk of ``predict_mixed`` / ``atom_derivatives`` (``points``: all the pass's points):
        (values (nch, c) (zeros without ``want_values`` on the compiled path), gradients (nmix, c, 3)
        or None, per-pair parts (nmix, npair, 3) or None, pair points (indices into the chunk), pair
        atoms)."""
        atom_coords = np.asarray(atom_coords, float)
        if self.compiled:
            return self._compiled_chunk(points, chunk, spec, atom_coords, channels, mixings, want_grad, want_atoms,
                                        want_values)
        geometry = self._chunk_geometry(points[chunk.points], spec, atom_coords)
        values, grads, per_pair = self._predict_chunk(geometry, channels, mixings, want_grad, want_atoms)
        return values, grads, per_pair, geometry.p_idx, geometry.a_idx

    def _compiled_chunk(self, points, chunk: _Chunk, spec, atom_coords, channels, mixings, want_grad: bool,
                        want_atoms: bool, want_values: bool = True):
        """``_chunk`` by the numba kernels, on the species blocks of the species near the chunk's
        points (``chunk.blocks``): pair terms and species sums A_P, the contraction B_P = A_P C_PP
        (one BLAS product per l for all channels), then values and per-pair derivatives."""
        h, blocks = self.hyper, chunk.blocks
        offsets, p_idx, a_idx = jl_kernels.gather_pairs(*chunk.pairs, chunk.points)
        species = blocks.local_species[spec]
        r, unit, j1, dj1, j2, dj2, s, amp = jl_kernels.pair_terms(
            np.ascontiguousarray(points[chunk.points]), atom_coords, offsets, a_idx, species, blocks.one_body.shape[1],
            h.r_cut, h.n1, self._rec1, h.r_min, self._p1_minus, h.n2, self._rec2, self._p2_minus, self._p2_plus,
            h.l_max, self._hrec)
        nch, kdim = len(channels), amp.shape[2]
        contracted = np.empty((self.nlm, amp.shape[1], nch, kdim))  # amp's padded rows
        for l in range(h.l_max + 1):
            lm = slice(l * l, (l + 1) ** 2)
            np.matmul(amp[lm].reshape(-1, kdim), blocks.stacked[l], out=contracted[lm].reshape(-1, nch * kdim))
        values, grads, g_pair = jl_kernels.pair_outputs(
            offsets, a_idx, species, unit, r, j1, dj1, j2, dj2, s, amp, contracted, blocks.one_body, blocks.self_term,
            np.ascontiguousarray(mixings, dtype=float), h.l_max, self._hrec, want_values, want_grad, want_atoms)
        return values, (grads if want_grad else None), (g_pair if want_atoms else None), p_idx, a_idx

    def _pair_terms(self, points: np.ndarray, atom_coords: np.ndarray):
        """All (point, atom) pairs within r_cut of a chunk, at once: indices (npair,), distances,
        unit vectors, J1, dJ1, J2, dJ2 and the solid harmonics S at the unit vectors."""
        h = self.hyper
        diff = points[:, None, :] - atom_coords[None, :, :]
        dist = np.sqrt(np.einsum("pax,pax->pa", diff, diff))
        p_idx, a_idx = np.nonzero(dist < h.r_cut)
        r = dist[p_idx, a_idx]
        unit = diff[p_idx, a_idx] / np.maximum(r, _TINY_DISTANCE)[:, None]
        j1, dj1 = radial_one_body(r, h.n1, h.alpha, h.beta, h.r_min, h.r_cut)
        j2, dj2 = radial_two_body(r, h.n2, h.a2, h.b2, h.r_cut)
        s = solid_harmonics(unit, h.l_max, gradient=False)
        return p_idx, a_idx, r, unit, j1, dj1, j2, dj2, s

    def _chunk_geometry(self, points, spec, atom_coords) -> _ChunkGeometry:
        """The coefficient-independent part of a chunk: pair terms and the species sums A^Z."""
        c, natm, nr2 = len(points), len(atom_coords), self.nr2
        p_idx, a_idx, r, unit, j1, dj1, j2, dj2, s = self._pair_terms(points, atom_coords)
        radial_dense = np.zeros((c, natm, 2, nr2))
        radial_dense[p_idx, a_idx, 0] = j2
        radial_dense[p_idx, a_idx, 1] = dj2
        s_dense = np.zeros((c, natm, self.nlm))
        s_dense[p_idx, a_idx] = s
        amp = np.zeros((self.nlm, c, self.nsp * nr2))  # A^Z_{n,lm}(g) stored as [lm, g, Z*nr2 + n]
        species_atoms = []
        for a in range(self.nsp):
            atoms = np.nonzero(spec == a)[0]
            if atoms.size:
                species_atoms.append((a, atoms))
                amp_a = np.matmul(s_dense[:, atoms].transpose(0, 2, 1), radial_dense[:, atoms, 0])  # (c, nlm, nr2)
                amp[:, :, a * nr2:(a + 1) * nr2] = amp_a.transpose(1, 0, 2)
        return _ChunkGeometry(c, natm, p_idx, a_idx, spec[a_idx], r, unit, j1, dj1, j2, dj2, s, amp, radial_dense,
                              species_atoms)

    def _predict_chunk(self, geo: _ChunkGeometry, channels: list[ContractedCoefficients], mixings: np.ndarray,
                       want_grad: bool, want_atoms: bool):
        """Values (nch, c) of the models ``channels``; for each mixing m in ``mixings`` (nmix, nch, c)
        the gradient (c, 3) of sum_k m_k f_k at fixed m (stacked: (nmix, c, 3)) and its per-pair parts
        g_pair (npair, 3) (d/d R_i of the value at point p is -g_pair of the pair (p, i); a list per
        mixing).

        Work is vectorized over all (point, atom) pairs of the chunk; the species sums A^Z are
        batched matrix products over dense (point, atom) arrays (``_chunk_geometry``). The
        derivative pass is linear in the contracted coefficients, so it runs once per mixing on
        the mixed contractions.
        """
        c, kdim = geo.c, self.nsp * self.nr2
        pair_species, j2, amp = geo.pair_species, geo.j2, geo.amp
        values = np.zeros((len(channels), c))
        contractions = []  # per model: (C_l A_l, self projection per pair, one-body coefficients per pair)
        for k, coefs in enumerate(channels):
            proj = np.empty_like(j2)
            for a in range(self.nsp):
                mask = pair_species == a
                proj[mask] = j2[mask] @ coefs.self_term[a]
            one_body = coefs.one_body[pair_species]
            pair_value = np.einsum("pn,pn->p", geo.j1, one_body) - np.einsum("pn,pn->p", proj, j2)
            values[k] = np.bincount(geo.p_idx, weights=pair_value, minlength=c)
            contracted_k = np.empty_like(amp)  # B = C_l A_l: one matrix product per l
            for l in range(self.hyper.l_max + 1):
                lm = slice(l * l, (l + 1) ** 2)
                contracted_k[lm] = (amp[lm].reshape(-1, kdim) @ coefs.two_body[l]).reshape(2 * l + 1, c, kdim)
            values[k] += np.einsum("mck,mck->c", amp, contracted_k)
            if want_grad or want_atoms:
                contractions.append((self._pair_contraction(geo, contracted_k), proj, one_body))
        if not (want_grad or want_atoms):
            return values, None, None
        grads, per_atoms = [], []
        for mixing in mixings:
            g_pair = self._pair_gradient(geo, contractions, mixing)
            if want_grad:
                grads.append(np.stack([np.bincount(geo.p_idx, weights=g_pair[:, x], minlength=c)
                                       for x in range(3)], axis=1))
            if want_atoms:
                per_atoms.append(g_pair)
        return values, (np.array(grads) if want_grad else None), (per_atoms if want_atoms else None)

    def _pair_contraction(self, geo: _ChunkGeometry, contracted: np.ndarray) -> np.ndarray:
        """(JB_m, dJB_m/dr) (npair, 2, nlm) with JB_m = sum_n J2_n(r_pi) B_{m,n}(p) and B = C A of the
        pair's species at the pair's point: per species one batched matrix product over the chunk's
        dense (point, atom) radial functions."""
        c, nr2, nlm = geo.c, self.nr2, self.nlm
        by_species = contracted.reshape(nlm, c, self.nsp, nr2)
        dense = np.empty((c, geo.natm, 2, nlm))
        for a, atoms in geo.species_atoms:
            lhs = geo.radial_dense[:, atoms].reshape(c, 2 * len(atoms), nr2)
            product = np.matmul(lhs, by_species[:, :, a, :].transpose(1, 2, 0))  # (c, 2 natm_a, nlm)
            dense[:, atoms] = product.reshape(c, len(atoms), 2, nlm)
        return dense[geo.p_idx, geo.a_idx]

    def _pair_gradient(self, geo: _ChunkGeometry, contractions: list[tuple], mixing: np.ndarray) -> np.ndarray:
        """Per (point, atom) pair the part g_pair (npair, 3) of grad_r sum_k m_k f_k(r) carried by that
        atom's functions (d/d R_i = -g_pair of its pairs), at fixed mixing m (nch, c); ``contractions``
        per model: (``_pair_contraction``, self projection per pair, one-body coefficients per pair)."""
        p_idx, r, unit, s = geo.p_idx, geo.r, geo.unit, geo.s
        jb = np.zeros((len(p_idx), 2, self.nlm))  # mixed (JB, dJB/dr) per pair
        self_proj = np.zeros_like(geo.j2)  # sum_k m_k Csum_s J2 per pair (the i = j term)
        one_body_coefs = np.zeros_like(geo.j1)  # sum_k m_k one-body coefficients per pair
        for (pair_jb, proj, one_body), m in zip(contractions, mixing, strict=True):
            pair_mix = m[p_idx]
            jb += pair_mix[:, None, None] * pair_jb
            self_proj += pair_mix[:, None] * proj
            one_body_coefs += pair_mix[:, None] * one_body
        radial = np.einsum("pm,pm->p", jb[:, 1], s) - np.einsum("pn,pn->p", geo.dj2, self_proj)
        jb = jb[:, 0]
        # sum_m JB_m dS_m/du = sum_k (JB D_x)_k S_k; minus the radial part l S_m u of d(S_m(u)/|u|^l)
        jb_grad = np.einsum("pxk,pk->px", (jb @ self._harmonic_gradient_all).reshape(-1, 3, self.nlm), s)
        angular = ((jb_grad - unit * np.einsum("pm,m,pm->p", jb, self._l_index, s)[:, None])
                   / np.maximum(r, _TINY_DISTANCE)[:, None])
        one_body = np.einsum("pn,pn->p", geo.dj1, one_body_coefs)
        return (2.0 * radial + one_body)[:, None] * unit + 2.0 * angular
