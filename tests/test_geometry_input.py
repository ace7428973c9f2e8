"""Bad geometry input: a one-line error naming the file, frame and line, exit status 2, no output."""

import pytest

from ipi_jlcdm.cli.main import main

from .ipi_helpers import WATER_MODEL

GOOD = ["O 0.000 0.000 0.117", "H 0.000 0.757 -0.469", "H 0.000 -0.757 -0.469"]


@pytest.mark.parametrize("lines, expected", [
    (["3", "water", "O nan 0.0 0.117", *GOOD[1:]], "(frame 0): atom 1 (line 3) has a non-finite coordinate"),
    (["3", "water", GOOD[0], "H 0.000 0.757", GOOD[2]], "got 3 column(s)"),
    (["3", "water", GOOD[0], "Qq 0.000 0.757 -0.469", GOOD[2]], "unknown element symbol 'Qq'"),
    (["3", "water", GOOD[0], "X 0.000 0.757 -0.469", GOOD[2]], "unknown element symbol 'X'"),
    (["4", "water", *GOOD], "announces 4 atoms but the file ends early"),
    (["2", "water", *GOOD], "more atom lines than the previous frame announced"),
    (["3", "water", GOOD[0], GOOD[1], "H 0.000 0.757 -0.469"],
     "atom 2 (line 4) and atom 3 (line 5) are 0.000 angstrom"),
    (["3", "water", "O 0.000 0.000 0.117", "H 0.000 0.100 0.117", GOOD[2]], "closer than 0.3 angstrom"),
])
def test_bad_geometry_is_a_clear_error_and_writes_nothing(tmp_path, capsys, lines, expected):
    path = tmp_path / "bad.xyz"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.extxyz"
    code = main(["eval", "--model", str(WATER_MODEL), str(path), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert str(path) in err and expected in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_an_impossible_anderson_grid_level_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "water.xyz"
    path.write_text("\n".join(["3", "water", *GOOD]) + "\n")
    out = tmp_path / "out.extxyz"
    code = main(["eval", "--model", str(WATER_MODEL), str(path), "-o", str(out), "--anderson-grid-level", "12"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "grid level 0-9, got 12" in err and len(err.splitlines()) == 1
    assert not out.exists()
