"""CCP-EM pipeliner job: option table against `locband filter`, command line, nodes, validation, results.

Fast and offline: the job class is instantiated and its methods called directly; the pipeliner's
own project, job runner and command line are exercised in integration/test_ccpem_pipeliner.py.
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
from locband.commands._common import engine_from_args  # noqa: E402
from locband.engine.params import FilterParams  # noqa: E402
from locband.engine.synthetic import synthetic_pair  # noqa: E402
from locband.errors import InputFileError  # noqa: E402
from locband.inputs import check_inputs_agree, load_inputs  # noqa: E402
from locband.io.mrc import read_map, read_map_header, write_map  # noqa: E402
from locband.pipeline import FilterJob, filter_files  # noqa: E402

#: flags of `locband filter` that the job sets itself rather than offering them
SET_BY_JOB = {"--out-dir", "--quiet", "--help", "-h"}
JOB_DIR = "LocBand/job007/"


@pytest.fixture(autouse=True)
def _own_pipeliner_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeliner writes a settings file under $XDG_CONFIG_HOME on first use: keep it in the test folder."""
    from pipeliner import user_settings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PIPELINER_DEFAULT_NRTHREADS", raising=False)
    monkeypatch.setattr(user_settings, "_settings", None)


def _filter_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["filter"]


def _flag_actions() -> dict[str, argparse.Action]:
    return {s: a for a in _filter_parser()._actions for s in a.option_strings}


def _positionals() -> list[argparse.Action]:
    return [a for a in _filter_parser()._actions if not a.option_strings]


# --------------------------------------------------------------------------------------------
# the option table cannot drift from `locband filter`
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ccpem.FILTER_OPTIONS))
def test_every_job_option_is_an_argument_of_locband_filter(name: str) -> None:
    opt = ccpem.FILTER_OPTIONS[name]
    if opt.kind == "halfmap":
        assert opt.flag.lower() in [a.dest for a in _positionals()]
    else:
        assert opt.flag in _flag_actions(), f"{name}: locband filter --help has no {opt.flag}"


def test_every_option_of_locband_filter_is_offered_by_the_job() -> None:
    offered = {o.flag for o in ccpem.FILTER_OPTIONS.values()}
    assert set(_flag_actions()) - SET_BY_JOB <= offered
    assert sorted(a.dest.upper() for a in _positionals()) == sorted(
        o.flag for o in ccpem.FILTER_OPTIONS.values() if o.kind == "halfmap")


@pytest.mark.parametrize("name", [n for n, o in ccpem.FILTER_OPTIONS.items() if o.params_field])
def test_engine_option_defaults_are_filterparams_and_locband_filter_defaults(name: str) -> None:
    opt = ccpem.FILTER_OPTIONS[name]
    job = ccpem.LocbandFilterJob()
    expected = getattr(FilterParams(), opt.params_field)
    assert job.joboptions[name].value == expected
    action = _flag_actions()[opt.flag]
    assert action.default == expected  # store_true flags: False, as the FilterParams switches


def test_choices_are_those_of_locband_filter() -> None:
    opt = ccpem.FILTER_OPTIONS["fft_backend"]
    assert tuple(_flag_actions()[opt.flag].choices) == opt.choices


# --------------------------------------------------------------------------------------------
# job option values -> command line, read back by the real `locband filter` parser
# --------------------------------------------------------------------------------------------

def _job(tmp_path: Path | None = None, **values: object) -> ccpem.LocbandFilterJob:
    job = ccpem.LocbandFilterJob()
    job.output_dir = JOB_DIR
    job.joboptions["half_map_1"].value = "Refine3D/job010/run_half1_class001_unfil.mrc"
    job.joboptions["half_map_2"].value = "Refine3D/job010/run_half2_class001_unfil.mrc"
    for name, value in values.items():
        job.joboptions[name].value = value
    return job


def _parsed(job: ccpem.LocbandFilterJob) -> argparse.Namespace:
    (command,) = job.get_commands()
    argv = [str(a) for a in command.cmd]
    assert argv[0] == ccpem.locband_executable() is not None and argv[1] == "filter"
    return build_parser().parse_args(argv[1:])


def test_default_job_is_locband_filter_with_default_settings() -> None:
    ns = _parsed(_job())
    assert (ns.half1, ns.half2) == ("Refine3D/job010/run_half1_class001_unfil.mrc",
                                    "Refine3D/job010/run_half2_class001_unfil.mrc")
    assert ns.out_dir == JOB_DIR and ns.quiet
    assert engine_from_args(ns).params == FilterParams()
    assert (ns.mask, ns.pixel_size, ns.fft_backend, ns.report, ns.threads) == (None, None, None, True, 1)


@pytest.mark.parametrize(
    ("name", "value", "dest", "expected"),
    [
        # the job's own options; every engine setting is in tests/test_options.py, for every host
        ("mask", "MaskCreate/job011/mask.mrc", "mask", "MaskCreate/job011/mask.mrc"),
        ("pixel_size", 1.06, "pixel_size", 1.06),
        ("fft_backend", "scipy", "fft_backend", "scipy"),  # "auto" leaves the flag out, the others pass it
        ("report", False, "report", False),
        ("nr_threads", 3, "threads", 3),
    ],
)
def test_each_job_option_reaches_locband_filter(name: str, value: object, dest: str, expected: object) -> None:
    ns = _parsed(_job(**{name: value}))
    assert getattr(ns, dest) == expected
    opt = ccpem.FILTER_OPTIONS[name]
    if opt.params_field:
        params = engine_from_args(ns).params
        wanted = getattr(FilterParams(), opt.params_field)
        assert getattr(params, opt.params_field) == expected != wanted  # the one setting changed, nothing else
        assert params == FilterParams(**{opt.params_field: expected})


# --------------------------------------------------------------------------------------------
# output nodes
# --------------------------------------------------------------------------------------------

def _node_types(job: ccpem.LocbandFilterJob) -> dict[str, str]:
    job.create_output_nodes()
    return {n.name: n.type for n in job.output_nodes}


def test_output_nodes_are_typed_for_later_jobs() -> None:
    assert _node_types(_job()) == {
        f"{JOB_DIR}filtered.mrc": "DensityMap.mrc.locband.localfilter",
        f"{JOB_DIR}filtered_half1.mrc": "DensityMap.mrc.locband.localfilter.halfmap",
        f"{JOB_DIR}filtered_half2.mrc": "DensityMap.mrc.locband.localfilter.halfmap",
        f"{JOB_DIR}local_resolution.mrc": "Image3D.mrc.locband.localresmap",
        f"{JOB_DIR}summary.json": "ProcessData.json.locband.summary",
        f"{JOB_DIR}report.pdf": "LogFile.pdf.locband.report",
    }


def test_optional_outputs_follow_their_options() -> None:
    types = _node_types(_job(band_snr=True, report=False))
    assert types[f"{JOB_DIR}band_snr.mrc"] == "Image3D.mrc.locband.bandsnr"
    assert f"{JOB_DIR}report.pdf" not in types


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
    write_map("h2_small.mrc", pair.half2[:30], pixel_size_angstrom=2.0)
    write_map("h2_coarse.mrc", pair.half2, pixel_size_angstrom=2.5)
    return tmp_path


def _errors(job: ccpem.LocbandFilterJob) -> list[str]:
    return [r.message for r in job.validate_joboptions() if r.type == "error"]


def _locband_message(h1: str, h2: str, mask: str | None = None) -> str:
    with pytest.raises(InputFileError) as info:
        check_inputs_agree(read_map(h1), read_map(h2), read_map(mask) if mask else None, pixel_size_angstrom=None)
    return str(info.value)


def test_good_maps_without_mask_validate(maps: Path) -> None:
    assert _errors(_job(half_map_1="h1.mrc", half_map_2="h2.mrc")) == []


def test_good_maps_with_mask_validate(maps: Path) -> None:
    assert _errors(_job(half_map_1="h1.mrc", half_map_2="h2.mrc", mask="mask.mrc")) == []


@pytest.mark.parametrize("other", ["h2_small.mrc", "h2_coarse.mrc"])
def test_half_maps_that_differ_fail_validation_with_locbands_message(maps: Path, other: str) -> None:
    errors = _errors(_job(half_map_1="h1.mrc", half_map_2=other))
    assert errors == [_locband_message("h1.mrc", other)]
    assert ("differ in shape" if "small" in other else "differ in voxel size") in errors[0]


def test_a_pixel_size_override_lifts_the_voxel_size_check_as_in_locband(maps: Path) -> None:
    assert _errors(_job(half_map_1="h1.mrc", half_map_2="h2_coarse.mrc", pixel_size=2.0)) == []


def test_mask_of_another_box_fails_validation(maps: Path) -> None:
    (msg,) = _errors(_job(half_map_1="h1.mrc", half_map_2="h2.mrc", mask="h2_small.mrc"))
    assert msg == _locband_message("h1.mrc", "h2.mrc", "h2_small.mrc")


def test_a_map_locband_cannot_read_fails_validation_with_read_maps_message(maps: Path) -> None:
    data = Path("h2.mrc").read_bytes()
    Path("h2_cut.mrc").write_bytes(data[:-4000])  # header intact, data short
    with pytest.raises(InputFileError) as info:
        read_map("h2_cut.mrc", what="half-map 2")
    assert "is truncated" in str(info.value)
    assert _errors(_job(half_map_1="h1.mrc", half_map_2="h2_cut.mrc")) == [str(info.value)]


def test_a_box_too_small_fails_validation_as_locband_would(maps: Path) -> None:
    pair = synthetic_pair((6, 6, 6), noise_std=1.0, seed=7)
    write_map("t1.mrc", pair.half1, pixel_size_angstrom=2.0)
    write_map("t2.mrc", pair.half2, pixel_size_angstrom=2.0)
    with pytest.raises(InputFileError) as info:
        load_inputs(Path("t1.mrc"), Path("t2.mrc"), None, pixel_size_angstrom=None)
    assert "needs at least 8" in str(info.value)
    assert _errors(_job(half_map_1="t1.mrc", half_map_2="t2.mrc")) == [str(info.value)]


def test_maps_not_made_yet_do_not_block_scheduling(maps: Path) -> None:
    # an upstream job may still be running; the job runner checks again when locband starts
    assert _errors(_job(half_map_1="Refine3D/job099/run_half1_class001_unfil.mrc",
                        half_map_2="Refine3D/job099/run_half2_class001_unfil.mrc")) == []


def test_setting_out_of_range_fails_with_filterparams_message(maps: Path) -> None:
    job = _job(half_map_1="h1.mrc", half_map_2="h2.mrc", band_ratio=0.5)
    with pytest.raises(ValueError) as info:
        FilterParams(band_ratio=0.5)
    results = [r for r in job.validate_joboptions() if r.type == "error"]
    assert [r.message for r in results] == [str(info.value)]
    assert results[0].raised_by == [job.joboptions["band_ratio"]]


@pytest.mark.parametrize("axes", [(1, 2, 3), (1, 3, 2), (2, 1, 3), (2, 3, 1), (3, 1, 2), (3, 2, 1)])
def test_header_reader_agrees_with_the_map_reader(maps: Path, axes: tuple[int, int, int]) -> None:
    from mrc_variants import write_permuted

    vol = np.zeros((5, 6, 7), np.float32)  # non-cubic: a wrong axis order shows in the shape
    write_permuted(Path("perm.mrc"), vol, axes, voxel=1.1)
    for name in ("h1.mrc", "h2_small.mrc", "h2_coarse.mrc", "perm.mrc"):
        head, full = read_map_header(name), read_map(name)
        assert (head.shape, head.pixel_size_angstrom, head.path) == (full.shape, full.pixel_size_angstrom, full.path)
    assert read_map_header("perm.mrc").shape == (5, 6, 7)


# --------------------------------------------------------------------------------------------
# results for the GUI, from a real run's files
# --------------------------------------------------------------------------------------------

@pytest.fixture
def finished(maps: Path) -> ccpem.LocbandFilterJob:
    filter_files(FilterJob(Path("h1.mrc"), Path("h2.mrc"), out_dir=Path(JOB_DIR), mask=Path("mask.mrc")))
    return _job(half_map_1="h1.mrc", half_map_2="h2.mrc", mask="mask.mrc")


def _by_type(job: ccpem.LocbandFilterJob) -> dict[str, object]:
    objects = job.create_results_display()
    out = {o.dobj_type: o for o in objects}
    assert len(out) == len(objects)
    return out


def test_results_display_shows_what_the_report_shows(finished: ccpem.LocbandFilterJob) -> None:
    objs = _by_type(finished)
    assert set(objs) == {"table", "graph", "histogram", "montage", "mapmodel", "image"}
    for obj in objs.values():  # each one survives the JSON round trip Doppio makes
        again = create_results_display_object(**json.loads(json.dumps(obj.__dict__)))
        assert again.dobj_type == obj.dobj_type


def test_histogram_counts_the_voxels_inside_the_mask(finished: ccpem.LocbandFilterJob) -> None:
    hist = _by_type(finished)["histogram"]
    inside = int(np.count_nonzero(read_map("mask.mrc").data > 0.5))
    assert sum(hist.bins) == inside and len(hist.bin_edges) == len(hist.bins) + 1
    local = read_map(f"{JOB_DIR}local_resolution.mrc").data[read_map("mask.mrc").data > 0.5]
    # edges are float64 copies of float32 values: equal to float32 precision
    assert hist.bin_edges[0] == pytest.approx(float(local.min()), rel=1e-6)
    assert hist.bin_edges[-1] == pytest.approx(float(local.max()), rel=1e-6)


def test_fsc_graph_is_the_summary_curve_in_inverse_angstrom(finished: ccpem.LocbandFilterJob) -> None:
    graph = _by_type(finished)["graph"]
    summary = json.loads(Path(f"{JOB_DIR}summary.json").read_text())
    unmasked = summary["fsc"]["unmasked"]
    assert graph.yvalues[0] == unmasked["fsc"]
    assert graph.xvalues[0] == pytest.approx([f / 2.0 for f in unmasked["frequency_cycles_per_voxel"]], abs=1e-12)
    assert graph.xrange == [0.0, pytest.approx(0.25)]  # Nyquist at 2 Å/voxel
    assert graph.yvalues[-2:] == [[0.143, 0.143], [0.5, 0.5]]
    assert "masked" in graph.data_series_labels[1]


def test_summary_table_and_metadata_carry_the_resolutions(finished: ccpem.LocbandFilterJob) -> None:
    summary = json.loads(Path(f"{JOB_DIR}summary.json").read_text())
    rows = dict(_by_type(finished)["table"].table_data)
    assert rows["FSC = 0.143 (masked)"] == f"at {summary['fsc_0143_angstrom']['masked']:.2f} Å"
    assert rows["FSC = 0.5 (unmasked)"] == f"at {summary['fsc_05_angstrom']['unmasked']:.2f} Å"
    meta = finished.gather_metadata()
    assert meta["fsc_0143_angstrom"] == summary["fsc_0143_angstrom"]
    assert meta["local_resolution_angstrom"]["p50"] == summary["local_resolution_angstrom"]["p50"]


def test_job_declares_program_version_and_reference() -> None:
    job = ccpem.LocbandFilterJob()
    assert job.PROCESS_NAME == "locband.postprocess.local_filter"
    assert job.CATEGORY_LABEL == "Map Postprocessing"
    (program,) = job.jobinfo.programs
    assert program.name == program.command == "locband"  # as reports and citations name it
    assert program.exe_path == ccpem.locband_executable() and program.vers_com == [program.exe_path, "--version"]
    assert job.jobinfo.is_available and program.get_version(timeout=30.0)  # the pipeliner ran `locband --version`
    assert job.jobinfo.references and job.jobinfo.short_desc and job.jobinfo.long_desc
