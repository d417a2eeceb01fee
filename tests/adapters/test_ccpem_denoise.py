"""CCP-EM pipeliner job for the interpretation map: option table against `locband denoise`, nodes, validation, results.

Fast and offline, as tests/adapters/test_ccpem.py for the filter job; the pipeliner's own project,
job runner and command line are exercised in integration/test_ccpem_pipeliner.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pipeliner", reason="the CCP-EM pipeliner is not installed: pip install 'locband[ccpem]'")

from pipeliner.display_tools import create_results_display_object  # noqa: E402

from locband.adapters import ccpem  # noqa: E402
from locband.cli import build_parser  # noqa: E402
from locband.commands import denoise_cmd  # noqa: E402
from locband.engine.params import FilterParams  # noqa: E402
from locband.engine.synthetic import synthetic_pair  # noqa: E402
from locband.interpretation import DenoiseJob, denoise_files  # noqa: E402
from locband.io.mrc import write_map  # noqa: E402
from locband.options import DENOISE, DenoiseSettings, EngineSettings  # noqa: E402
from locband.report import cross_validation_curves  # noqa: E402

#: flags of `locband denoise` that the job sets itself rather than offering them
SET_BY_JOB = {"--out-dir", "--quiet", "--help", "-h"}
JOB_DIR = "LocBand/job008/"


@pytest.fixture(autouse=True)
def _own_pipeliner_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeliner writes a settings file under $XDG_CONFIG_HOME on first use: keep it in the test folder."""
    from pipeliner import user_settings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PIPELINER_DEFAULT_NRTHREADS", raising=False)
    monkeypatch.setattr(user_settings, "_settings", None)


def _denoise_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["denoise"]


def _flag_actions() -> dict[str, argparse.Action]:
    return {s: a for a in _denoise_parser()._actions for s in a.option_strings}


def _job(**values: object) -> ccpem.LocbandDenoiseJob:
    job = ccpem.LocbandDenoiseJob()
    job.output_dir = JOB_DIR
    job.joboptions["half_map_1"].value = "Refine3D/job010/run_half1_class001_unfil.mrc"
    job.joboptions["half_map_2"].value = "Refine3D/job010/run_half2_class001_unfil.mrc"
    for name, value in values.items():
        job.joboptions[name].value = value
    return job


def _request(job: ccpem.LocbandDenoiseJob) -> denoise_cmd.DenoiseCommand:
    (command,) = job.get_commands()
    argv = [str(a) for a in command.cmd]
    assert argv[0] == ccpem.locband_executable() is not None and argv[1] == "denoise"
    return denoise_cmd.request_from_args(build_parser().parse_args(argv[1:]))


# --------------------------------------------------------------------------------------------
# the option table cannot drift from `locband denoise`
# --------------------------------------------------------------------------------------------

def test_the_job_offers_exactly_the_options_of_locband_denoise() -> None:
    offered = {o.flag for o in ccpem.DENOISE_OPTIONS.values() if o.kind != "halfmap"}
    assert offered == set(_flag_actions()) - SET_BY_JOB
    positionals = [a.dest.upper() for a in _denoise_parser()._actions if not a.option_strings]
    assert positionals == [o.flag for o in ccpem.DENOISE_OPTIONS.values() if o.kind == "halfmap"]


@pytest.mark.parametrize("name", [n for n, o in ccpem.DENOISE_OPTIONS.items() if o.kind not in ("halfmap", "threads")])
def test_defaults_are_those_of_locband_denoise(name: str) -> None:
    opt = ccpem.DENOISE_OPTIONS[name]
    shown = ccpem.LocbandDenoiseJob().joboptions[name].value
    default = _flag_actions()[opt.flag].default
    if opt.kind == "choice":
        assert (shown, default) == ("auto", None)  # "auto" leaves the flag out
    elif opt.kind == "mask":
        assert (shown, default) == ("", None)  # no mask
    elif opt.kind == "no-switch":
        assert shown is True and default is True  # the --no-... flag is given for No
    elif opt.params_field:
        assert shown == getattr(FilterParams(), opt.params_field) == default
    else:
        assert shown == default, name


def test_default_job_is_locband_denoise_with_default_settings() -> None:
    req = _request(_job())
    job = req.job
    assert (str(job.half1), str(job.half2), str(job.out_dir)) == (
        "Refine3D/job010/run_half1_class001_unfil.mrc", "Refine3D/job010/run_half2_class001_unfil.mrc",
        JOB_DIR.rstrip("/"))
    assert req.quiet and job.report and job.mask is None and job.pixel_size_angstrom is None
    assert job.denoise == DenoiseSettings()
    assert job.engine == EngineSettings(threads=1)  # the pipeliner's default "Number of threads"


@pytest.mark.parametrize(("name", "value", "field", "expected"), [
    ("mask", "MaskCreate/job011/mask.mrc", "mask", Path("MaskCreate/job011/mask.mrc")),
    ("pixel_size", 1.06, "pixel_size_angstrom", 1.06),
    ("report", False, "report", False),
])
def test_each_file_option_reaches_locband_denoise(name: str, value: object, field: str, expected: object) -> None:
    """The job's own options; every interpretation setting is in tests/test_options.py, for every host."""
    assert getattr(_request(_job()).job, field) != expected
    assert getattr(_request(_job(**{name: value})).job, field) == expected


# --------------------------------------------------------------------------------------------
# output nodes
# --------------------------------------------------------------------------------------------

def test_output_nodes_are_typed_for_later_jobs() -> None:
    job = _job()
    job.create_output_nodes()
    assert {n.name: n.type for n in job.output_nodes} == {
        f"{JOB_DIR}denoised.mrc": "DensityMap.mrc.locband.denoised",
        # cross-validation maps, no "halfmap": not to be averaged or FSC'd as half-maps
        f"{JOB_DIR}denoised_half1.mrc": "DensityMap.mrc.locband.denoised.crossvalidation",
        f"{JOB_DIR}denoised_half2.mrc": "DensityMap.mrc.locband.denoised.crossvalidation",
        f"{JOB_DIR}local_resolution.mrc": "Image3D.mrc.locband.localresmap",
        f"{JOB_DIR}summary.json": "ProcessData.json.locband.denoised.summary",
        f"{JOB_DIR}report.pdf": "LogFile.pdf.locband.denoised.report",
    }
    job = _job(report=False)
    job.create_output_nodes()
    assert f"{JOB_DIR}report.pdf" not in {n.name for n in job.output_nodes}


# --------------------------------------------------------------------------------------------
# validation: locband's own checks and messages
# --------------------------------------------------------------------------------------------

@pytest.fixture
def maps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (the working directory) with two 32^3 half-maps and a mask at 2 Å."""
    monkeypatch.chdir(tmp_path)
    pair = synthetic_pair((32, 32, 32), noise_std=1.0, seed=7)
    write_map("h1.mrc", pair.half1, pixel_size_angstrom=2.0)
    write_map("h2.mrc", pair.half2, pixel_size_angstrom=2.0)
    write_map("mask.mrc", pair.mask, pixel_size_angstrom=2.0)
    write_map("h2_coarse.mrc", pair.half2, pixel_size_angstrom=2.5)
    return tmp_path


def _errors(job: ccpem.LocbandDenoiseJob) -> list[str]:
    return [r.message for r in job.validate_joboptions() if r.type == "error"]


def test_good_maps_validate(maps: Path) -> None:
    assert _errors(_job(half_map_1="h1.mrc", half_map_2="h2.mrc", mask="mask.mrc", molecular_mass_kda=40.0)) == []


def test_half_maps_that_differ_fail_validation_as_the_filter_job(maps: Path) -> None:
    (msg,) = _errors(_job(half_map_1="h1.mrc", half_map_2="h2_coarse.mrc"))
    assert "differ in voxel size" in msg


@pytest.mark.parametrize(("values", "message"), [
    ({"cycles": 0}, "job option cycles: DenoiseParams.cycles must be an integer in [1, 10], got 0"),
    ({"bfactor": -50.0, "sharpen": False},
     "job option bfactor (one global B-factor) and job option sharpen (no sharpening) exclude each other"),
    ({"molecular_mass_kda": -3.0}, "job option molecular_mass_kda must be > 0, got -3.0"),
])
def test_interpretation_settings_fail_validation_with_locbands_message(maps: Path, values: dict[str, object],
                                                                       message: str) -> None:
    errors = _errors(_job(half_map_1="h1.mrc", half_map_2="h2.mrc", **values))
    assert len(errors) == 1 and errors[0].startswith(message)


# --------------------------------------------------------------------------------------------
# results for the GUI, from a real run's files
# --------------------------------------------------------------------------------------------

@pytest.fixture
def finished(maps: Path) -> ccpem.LocbandDenoiseJob:
    denoise_files(DenoiseJob(Path("h1.mrc"), Path("h2.mrc"), out_dir=Path(JOB_DIR), mask=Path("mask.mrc")))
    return _job(half_map_1="h1.mrc", half_map_2="h2.mrc", mask="mask.mrc")


def test_results_display_as_the_filter_jobs_plus_cross_validation(finished: ccpem.LocbandDenoiseJob) -> None:
    objects = finished.create_results_display()
    assert [o.dobj_type for o in objects] == ["table", "graph", "graph", "histogram", "montage", "mapmodel", "image"]
    for obj in objects:  # each one survives the JSON round trip Doppio makes
        again = create_results_display_object(**json.loads(json.dumps(obj.__dict__)))
        assert again.dobj_type == obj.dobj_type
    assert objects[1].title.startswith("Global FSC")
    assert "denoised.mrc" in objects[5].title  # the 3D viewer shows the interpretation map


def test_cross_validation_graph_is_the_reports_curves(finished: ccpem.LocbandDenoiseJob) -> None:
    graph = finished.create_results_display()[2]
    summary = json.loads(Path(f"{JOB_DIR}summary.json").read_text())
    which, curves = cross_validation_curves(summary)
    assert which == "masked"  # a mask was given
    assert graph.data_series_labels == ["raw half-maps (masked)", "denoised half vs raw other half (masked)",
                                        "linear filter half vs raw other half (masked)"]
    assert graph.yvalues[0] == summary["fsc"]["masked"]["fsc"]
    for (_, freq, mean), xs, ys in zip(curves, graph.xvalues[1:], graph.yvalues[1:], strict=True):
        assert ys == mean
        assert xs == pytest.approx([f / 2.0 for f in freq], abs=1e-12)  # 1/Å at 2 Å/voxel
    # the mean of both directions, as the report draws it
    cv = summary["cross_validation"]["masked"]
    np.testing.assert_allclose(graph.yvalues[1], 0.5 * (np.asarray(cv["half1_vs_raw_half2"]["fsc"])
                                                        + np.asarray(cv["half2_vs_raw_half1"]["fsc"])), rtol=0,
                               atol=1e-15)  # the same float64 arithmetic


def test_summary_table_and_metadata(finished: ccpem.LocbandDenoiseJob) -> None:
    summary = json.loads(Path(f"{JOB_DIR}summary.json").read_text())
    rows = dict(finished.create_results_display()[0].table_data)
    assert rows["FSC = 0.143 (masked)"] == f"at {summary['fsc_0143_angstrom']['masked']:.2f} Å"
    meta = finished.gather_metadata()
    assert meta["fsc_0143_angstrom"] == summary["fsc_0143_angstrom"]
    assert "never average it again" in meta["use"] and meta["envelope_volume_angstrom3"] > 0


def test_job_declares_program_version_and_reference() -> None:
    job = ccpem.LocbandDenoiseJob()
    assert job.PROCESS_NAME == "locband.postprocess.local_denoising"  # as LAFTER's lafter.postprocess.local_denoising
    assert job.CATEGORY_LABEL == "Map Postprocessing" and job.OUT_DIR == "LocBand"
    (program,) = job.jobinfo.programs
    assert program.name == "locband" and program.exe_path == ccpem.locband_executable()
    assert job.jobinfo.is_available
    assert "never" in job.jobinfo.short_desc and "refinement reference" in job.jobinfo.long_desc
    # the interpretation settings in a group of their own in the GUI, the bands as for the filter job
    assert {ccpem.DENOISE_OPTIONS[o.name].group for o in DENOISE} == {"Interpretation map"}
    assert ccpem.DENOISE_OPTIONS["band_ratio"].group == ccpem.FILTER_OPTIONS["band_ratio"].group
