"""tools/md_campaign.py: the i-PI inputs it writes (parsed by i-PI's own input classes) and the
files it reads back (i-PI's properties and extras formats)."""

import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from ipi.inputs.simulation import InputSimulation
from ipi.utils.io.inputs import io_xml

from ipi_jlcdm.demo import packaged_inputs
from ipi_jlcdm.ipi_run import configure_input

SPEC = importlib.util.spec_from_file_location("md_campaign", Path(__file__).parents[1] / "tools" / "md_campaign.py")
campaign = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(campaign)


def parsed_by_ipi(xml: Path) -> InputSimulation:
    simulation = InputSimulation()
    simulation.parse(io_xml.xml_parse_file(open(xml)).fields[0][1])
    return simulation


def test_stage_inputs_continue_from_a_checkpoint_at_the_requested_temperature(tmp_path):
    xml = tmp_path / "nvt.xml"
    configure_input(packaged_inputs() / "nvt.xml", xml, 100, "addr", {"seed": "1001"})
    campaign.write_stage_input(xml, tmp_path / "start.chk", 150.0)
    root = ET.parse(xml).getroot()
    initialize = root.find("system/initialize")
    assert initialize.find("file").get("mode") == "chk" and initialize.find("file").text.strip() == "start.chk"
    assert initialize.find("velocities") is None  # momenta come from the checkpoint
    assert float(root.find("system/ensemble/temperature").text) == 150.0
    rel = [t for t in root.iter("trajectory") if t.get("filename") == "rel"]
    assert rel and rel[0].get("extra_type") == "gap,residual,dipole_change,fallback"
    assert parsed_by_ipi(xml).total_steps.fetch() == 100

    first = tmp_path / "first.xml"
    configure_input(packaged_inputs() / "nvt.xml", first, 10, "addr")
    campaign.write_stage_input(first, tmp_path / "start.xyz", 100.0)
    initialize = ET.parse(first).getroot().find("system/initialize")
    assert initialize.find("file").get("mode") == "xyz" and float(initialize.find("velocities").text) == 100.0
    parsed_by_ipi(first)


def test_reliability_and_progress_files_are_read_back(tmp_path):
    extras = tmp_path / "nve.rel_0"
    lines = []
    for step, row in [(0, [0.13, 0.01, 0.0, 0]), (1, [0.12, 0.02, 0.05, 0]), (1, [0.12, 0.03, 0.06, 1])]:
        lines.append(f" #EXTRAS(gap,residual,dipole_change,fallback)# Step:  {step:10d} ")
        lines.append("  " + "  ".join(f"{v:.8e}" for v in row))
    extras.write_text("\n".join(lines) + "\n")
    rows = campaign.read_reliability(extras)  # a step written twice (a continued run): the last one counts
    np.testing.assert_allclose(rows, [[0.13, 0.01, 0.0, 0], [0.12, 0.03, 0.06, 1]])
    properties = tmp_path / "nve.out"
    properties.write_text("# column 1 --> step\n 0.0 0.0\n 1.0 5e-4\n 2.0 1e-3\n")
    assert campaign.steps_done(properties) == 2
    assert campaign.steps_done(tmp_path / "missing.out") == -1


def test_a_continued_stage_uses_this_campaigns_socket(tmp_path):
    """A checkpoint names the socket of the run that wrote it; a killed run leaves that socket file
    behind, so the continued stage must listen (and the driver connect) on the new address."""
    checkpoint = tmp_path / "nvt.chk"  # i-PI checkpoints are complete inputs: an input stands in for one
    configure_input(packaged_inputs() / "nvt.xml", checkpoint, 10, "campaign_old")
    campaign.resume_input(checkpoint, tmp_path / "nvt_resume.xml", "campaign_new")
    resumed = parsed_by_ipi(tmp_path / "nvt_resume.xml")
    assert [ff.address.fetch() for name, ff in resumed.extra if name == "ffsocket"] == ["campaign_new"]
