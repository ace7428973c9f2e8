"""Model file round trip and clear errors on bad files, other levels of theory and unknown species."""

import json

import numpy as np
import pytest

from ipi_jlcdm.electronic.engines import make_engine
from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.jl.descriptor import JLHyperparameters
from ipi_jlcdm.jl.model import JLCDModel, ModelFileError


def small_model(seed=0):
    hyper = JLHyperparameters(r_cut=5.0, n1=4, n2=4, l_max=2, alpha=3.5, beta=0.5, r_min=-1.5)
    coef = np.random.default_rng(seed).normal(size=_n_features(hyper, [1, 8]))
    return JLCDModel(hyper, [1, 8], coef, LevelOfTheory(grid_level=2), training={"note": "test"})


def _n_features(hyper, species):
    from ipi_jlcdm.jl.descriptor import JLDescriptor

    return JLDescriptor(hyper, species).n_features


def test_round_trip(tmp_path):
    model = small_model()
    model.energy_offset_hartree = 1.25e-3
    path = model.save(tmp_path / "m.npz")
    loaded = JLCDModel.load(path)
    assert loaded.hyper == model.hyper and loaded.species == model.species and loaded.level == model.level
    assert loaded.energy_offset_hartree == 1.25e-3
    np.testing.assert_array_equal(loaded.coefficients, model.coefficients)
    points = np.random.default_rng(1).normal(size=(10, 3))
    z, atoms = np.array([8, 1, 1]), np.array([[0.0, 0, 0], [0, 1.4, -1.0], [0, -1.4, -1.0]])
    np.testing.assert_array_equal(loaded.deformation_density(points, z, atoms)[0],
                                  model.deformation_density(points, z, atoms)[0])
    with np.load(path, allow_pickle=False) as data:  # portable: plain arrays and JSON, no pickle
        assert json.loads(str(data["metadata"]))["level_of_theory"]["xc"] == "PBE"


def test_corrupted_files_are_refused(tmp_path):
    path = small_model().save(tmp_path / "m.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFileError, match="corrupted"):
        JLCDModel.load(truncated)
    with np.load(path) as data:
        coef, meta = data["coefficients"].copy(), str(data["metadata"])
    coef[3] += 1e-3
    tampered = tmp_path / "tampered.npz"
    np.savez(tampered, coefficients=coef, metadata=np.array(meta))
    with pytest.raises(ModelFileError, match="checksum"):
        JLCDModel.load(tampered)
    np.savez(tmp_path / "other.npz", weights=coef)
    with pytest.raises(ModelFileError, match="not an ipi_jlcdm model"):
        JLCDModel.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        JLCDModel.load(tmp_path / "missing.npz")


def test_other_level_of_theory_and_unknown_species(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match="basis"):
        model.check_compatible(np.array([8, 1, 1]), LevelOfTheory(basis="def2-tzvp"))
    with pytest.raises(ValueError, match=r"Z=\[6\]"):
        model.check_compatible(np.array([6, 8, 1]))
    path = model.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"Z=\[7\]"):
        make_engine("jlcdm", str(path)).compute(np.array([7, 1, 1, 1]), np.eye(4, 3) * 2.0)


def test_packaged_uracil_model_loads():
    model = JLCDModel.load("uracil")
    assert model.species == [1, 6, 7, 8]
    assert model.level.xc == "PBE" and model.level.basis.lower() == "def2-svp"
