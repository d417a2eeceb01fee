"""RELION External job adapter: argument translation, half-map discovery, nodes, exit files."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
from node_files import read_output_nodes, write_output_nodes

from locband import cli
from locband.adapters.relion_external import (
    NODE_TYPES,
    ExternalRequest,
    build_output_nodes,
    lifecycle,
    other_half,
    resolve_half_maps,
)
from locband.commands.relion_external import parse_argv as parse_relion_external_args
from locband.engine.params import FilterParams
from locband.engine.synthetic import synthetic_pair
from locband.errors import InputError, InputFileError, JobAborted
from locband.io import relion_control as ctl
from locband.io.mrc import write_map
from locband.io.relion_nodes import OUTPUT_NODES_NAME

REPO = Path(__file__).resolve().parents[2]
WRAPPER = REPO / "wrappers" / "locband-relion-external"
BASE = ["--o", "External/job007/"]


@pytest.fixture(scope="module")
def refine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake Refine3D job folder: the two final half-maps and a mask (32^3, 2 Å/voxel)."""
    d = tmp_path_factory.mktemp("Refine3D") / "job010"
    d.mkdir()
    pair = synthetic_pair((32, 32, 32), noise_std=1.0, seed=3)
    write_map(d / "run_half1_class001_unfil.mrc", pair.half1, pixel_size_angstrom=2.0)
    write_map(d / "run_half2_class001_unfil.mrc", pair.half2, pixel_size_angstrom=2.0)
    write_map(d / "mask.mrc", pair.mask, pixel_size_angstrom=2.0)
    return d


def _field(obj: object, dotted: str) -> object:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------------------------
# argv -> Request, one option at a time
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("tokens", "field", "expected"),
    [
        (["--in_3dref", "Refine3D/job010/run_half1_class001_unfil.mrc"], "in_3dref",
         "Refine3D/job010/run_half1_class001_unfil.mrc"),
        (["--in_mask", "MaskCreate/job011/mask.mrc"], "mask", "MaskCreate/job011/mask.mrc"),
        (["--j", "6"], "max_threads", 6),
        (["--pipeline_control", "External/job007/"], "pipeline_control", "External/job007/"),
        (["--pipeline-control", "External/job007/"], "pipeline_control", "External/job007/"),
        (["--half1", "a/h1.mrc"], "half1", "a/h1.mrc"),
        (["--half2", "a/h2.mrc"], "half2", "a/h2.mrc"),
        (["--angpix", "1.06"], "pixel_size_angstrom", 1.06),
        (["--pixel_size", "1.06"], "pixel_size_angstrom", 1.06),
        (["--pixel-size", "1.06"], "pixel_size_angstrom", 1.06),
        (["--report", "no"], "report", False),
    ],
)
def test_request_field_per_option(tokens: list[str], field: str, expected: object) -> None:
    default = _field(parse_relion_external_args(BASE), field)
    assert default != expected  # otherwise the test could not tell the option was read
    assert _field(parse_relion_external_args(BASE + tokens), field) == expected


@pytest.mark.parametrize(
    ("tokens", "field", "expected"),
    [
        (["--band-ratio", "1.5"], "band_ratio", 1.5),  # a label written with dashes
        (["--apply_mask"], "apply_mask", True),  # a job parameter with an empty value arrives bare
        (["--apply_mask", "True"], "apply_mask", True),
        (["--band_snr", "1"], "keep_band_snr", True),
    ],
)
def test_relion_spellings_of_settings(tokens: list[str], field: str, expected: object) -> None:
    """How RELION writes values (the translation of every setting is in tests/test_options.py)."""
    assert getattr(FilterParams(), field) != expected
    assert getattr(parse_relion_external_args(BASE + tokens).engine.params, field) == expected


def test_out_dir_and_defaults() -> None:
    req = parse_relion_external_args(BASE)
    assert req == ExternalRequest(out_dir="External/job007/")


def test_relion_command_line_in_relion_order() -> None:
    """The exact order getCommandsExternalJob builds, with a bare empty parameter and extras."""
    argv = ["--o", "External/job007/", "--in_3dref", "h1.mrc", "--in_mask", "m.mrc", "--criterion", "0.2",
            "--apply_mask", "--j", "2", "--my_extra", "x", "--pipeline_control", "External/job007/"]
    req = parse_relion_external_args(argv)
    assert (req.in_3dref, req.mask, req.max_threads, req.engine.params.criterion, req.engine.params.apply_mask) == (
        "h1.mrc", "m.mrc", 2, 0.2, True)
    assert req.ignored == ("--my_extra", "x")


@pytest.mark.parametrize("tokens", [["--in_movies", "movies.star"], ["--in_parts", "p.star"], ["--unknown", "1"],
                                    ["stray"]])
def test_unknown_or_unused_inputs_are_kept_not_fatal(tokens: list[str]) -> None:
    req = parse_relion_external_args(BASE + tokens)
    assert any(tokens[-1] in item for item in req.ignored)


def test_no_abbreviation_of_user_labels() -> None:
    # "--band" must not be taken as "--band_ratio" / "--band_snr"
    req = parse_relion_external_args(BASE + ["--band", "2"])
    assert req.engine.params == FilterParams()
    assert req.ignored == ("--band", "2")


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ([], "--o OUTPUT_FOLDER is required"),
        (BASE + ["--criterion", "abc"], "--criterion must be a number, got 'abc'"),
        (BASE + ["--criterion"], "--criterion needs a value"),
        (BASE + ["--criterion", "1.5"], "FilterParams.criterion must be a number in (0, 1), got 1.5"),
        (BASE + ["--band_ratio", "0.9"], "FilterParams.band_ratio"),
        (BASE + ["--angpix", "-1"], "--angpix must be > 0"),
        (BASE + ["--j", "0"], "--j (number of threads) must be an integer >= 1, got '0'"),
        (BASE + ["--j", "two"], "--j (number of threads) must be an integer >= 1, got 'two'"),
        (BASE + ["--apply_mask", "maybe"], "--apply_mask must be yes or no, got 'maybe'"),
        (BASE + ["--fft_backend", "cuda"], "--fft_backend must be one of pyfftw, scipy, got 'cuda'"),
    ],
)
def test_bad_values_name_the_option(tokens: list[str], message: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_relion_external_args(tokens)
    assert message in str(exc.value)


# --------------------------------------------------------------------------------------------
# half-map discovery
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "other"),
    [
        ("Refine3D/job010/run_half1_class001_unfil.mrc", "Refine3D/job010/run_half2_class001_unfil.mrc"),
        ("Refine3D/job010/run_half2_class001_unfil.mrc", "Refine3D/job010/run_half1_class001_unfil.mrc"),
        ("maps/half1.mrc", "maps/half2.mrc"),
        ("half1_dir/map_half1_x.mrc", "half1_dir/map_half2_x.mrc"),  # only the file name changes
        ("maps/run_class001.mrc", None),
        ("maps/half10.mrc", None),
        ("maps/behalf1.mrc", None),
        ("maps/half1_half2.mrc", None),
    ],
)
def test_other_half_by_name(name: str, other: str | None) -> None:
    assert other_half(name) == other


def test_in_3dref_half1_finds_half2(refine_dir: Path) -> None:
    h = resolve_half_maps(ExternalRequest(out_dir="o", in_3dref=str(refine_dir / "run_half1_class001_unfil.mrc")))
    assert (h.half1.name, h.half2.name, h.mask) == ("run_half1_class001_unfil.mrc", "run_half2_class001_unfil.mrc",
                                                    None)


def test_in_3dref_half2_finds_half1(refine_dir: Path) -> None:
    h = resolve_half_maps(ExternalRequest(out_dir="o", in_3dref=str(refine_dir / "run_half2_class001_unfil.mrc")))
    assert (h.half1.name, h.half2.name) == ("run_half1_class001_unfil.mrc", "run_half2_class001_unfil.mrc")


def test_in_3dref_refine3d_folder(refine_dir: Path) -> None:
    h = resolve_half_maps(ExternalRequest(out_dir="o", in_3dref=str(refine_dir), mask=str(refine_dir / "mask.mrc")))
    assert (h.half1, h.half2, h.mask) == (refine_dir / "run_half1_class001_unfil.mrc",
                                          refine_dir / "run_half2_class001_unfil.mrc", refine_dir / "mask.mrc")


def test_parameters_name_both_halves(refine_dir: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "first.mrc", tmp_path / "second.mrc"
    a.write_bytes((refine_dir / "run_half1_class001_unfil.mrc").read_bytes())
    b.write_bytes((refine_dir / "run_half2_class001_unfil.mrc").read_bytes())
    h = resolve_half_maps(parse_relion_external_args(BASE + ["--half1", str(a), "--half2", str(b)]))
    assert (h.half1, h.half2) == (a, b)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d, t: ExternalRequest(out_dir="o"), "no half-maps: give --in_3dref"),
        (lambda d, t: ExternalRequest(out_dir="o", in_3dref=str(d / "mask.mrc")), "cannot find the other half-map"),
        (lambda d, t: ExternalRequest(out_dir="o", in_3dref=str(t)), "holds no run_half1_class001_unfil.mrc"),
        (lambda d, t: ExternalRequest(out_dir="o", in_3dref=str(t / "x_half1.mrc")), "does not exist"),
        (lambda d, t: ExternalRequest(out_dir="o", half1=str(d / "mask.mrc")), "cannot find half 2 by name"),
    ],
)
def test_half_map_errors(refine_dir: Path, tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as exc:
        resolve_half_maps(make(refine_dir, tmp_path))
    assert message in str(exc.value)


def _optimiser(path: Path, mask: str) -> None:
    path.write_text("# version 30001\n# relion_refine_mpi --o Refine3D/job010/run --auto_refine\n\n"
                    "data_optimiser_general\n\n_rlnOutputRootName Refine3D/job010/run\n"
                    f"_rlnCurrentIteration 3\n_rlnSolventMaskName {mask}\n_rlnDoSplitRandomHalves 1\n")


@pytest.fixture
def refine_copy(refine_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "Refine3D" / "job010"
    d.mkdir(parents=True)
    for name in ("run_half1_class001_unfil.mrc", "run_half2_class001_unfil.mrc", "mask.mrc"):
        (d / name).write_bytes((refine_dir / name).read_bytes())
    return d


def test_refine3d_folder_mask_from_last_optimiser(refine_copy: Path) -> None:
    _optimiser(refine_copy / "run_it003_optimiser.star", "elsewhere/old_mask.mrc")
    _optimiser(refine_copy / "run_it012_optimiser.star", str(refine_copy / "mask.mrc"))
    _optimiser(refine_copy / "run_ct3_it009_optimiser.star", "elsewhere/ct_mask.mrc")  # continued run, earlier
    assert resolve_half_maps(ExternalRequest(out_dir="o", in_3dref=str(refine_copy))).mask == refine_copy / "mask.mrc"


def test_refine3d_folder_mask_given_wins(refine_copy: Path, tmp_path: Path) -> None:
    _optimiser(refine_copy / "run_it012_optimiser.star", str(refine_copy / "mask.mrc"))
    given = str(tmp_path / "other_mask.mrc")
    assert resolve_half_maps(ExternalRequest(out_dir="o", in_3dref=str(refine_copy), mask=given)).mask == Path(given)


@pytest.mark.parametrize("name", ["None", "missing/mask.mrc"])
def test_refine3d_folder_without_usable_mask(refine_copy: Path, name: str) -> None:
    _optimiser(refine_copy / "run_it012_optimiser.star", name)
    assert resolve_half_maps(ExternalRequest(out_dir="o", in_3dref=str(refine_copy))).mask is None


def test_refine3d_folder_bad_optimiser_file(refine_copy: Path) -> None:
    (refine_copy / "run_it012_optimiser.star").write_text("data_something_else\n\n_rlnFoo 1\n")
    with pytest.raises(InputFileError, match="run_it012_optimiser.star' has no data_optimiser_general block"):
        resolve_half_maps(ExternalRequest(out_dir="o", in_3dref=str(refine_copy)))


# --------------------------------------------------------------------------------------------
# output nodes
# --------------------------------------------------------------------------------------------

OUTPUTS = {"full": "filtered.mrc", "half1": "filtered_half1.mrc", "half2": "filtered_half2.mrc",
           "local_resolution": "local_resolution.mrc", "summary": "summary.json", "report_pdf": "report.pdf"}

LABELS_40 = {"filtered.mrc": "DensityMap.mrc", "filtered_half1.mrc": "DensityMap.mrc.halfmap",
             "local_resolution.mrc": "Image3D.mrc.localresmap", "report.pdf": "LogFile.pdf.relion"}
# what each RELION version reads from RELION_OUTPUT_NODES.star (relion.md section 2)
VERSION_VIEW = {
    "3.1": ("rlnPipeLineNodeType", {"filtered.mrc": 6, "filtered_half1.mrc": 10, "local_resolution.mrc": 12,
                                    "report.pdf": 13}),
    "4.0": ("rlnPipeLineNodeTypeLabel", LABELS_40),
    "5.0": ("rlnPipeLineNodeTypeLabel", LABELS_40),  # 5.0 renamed only STAR-file node labels
}


def test_build_output_nodes_names_relative_to_project() -> None:
    nodes = build_output_nodes("External/job007/", OUTPUTS)
    assert [n.name for n in nodes] == ["External/job007/filtered.mrc", "External/job007/filtered_half1.mrc",
                                       "External/job007/local_resolution.mrc", "External/job007/report.pdf"]
    # half 2 and the summary are no nodes: PostProcess/LocalRes find half 2 by name from half 1
    assert build_output_nodes("External/job007", OUTPUTS) == nodes


@pytest.mark.parametrize("version", sorted(VERSION_VIEW))
def test_node_star_for_each_relion_version(tmp_path: Path, version: str) -> None:
    write_output_nodes(tmp_path, build_output_nodes("External/job007/", OUTPUTS))
    table = starfile.read(tmp_path / OUTPUT_NODES_NAME, always_dict=True)["output_nodes"]
    column, expected = VERSION_VIEW[version]
    got = {Path(n).name: v for n, v in zip(table["rlnPipeLineNodeName"], table[column], strict=True)}
    assert got == expected


def test_node_file_round_trip_and_kinds(tmp_path: Path) -> None:
    nodes = build_output_nodes("External/job007/", OUTPUTS)
    write_output_nodes(tmp_path, nodes)
    assert read_output_nodes(tmp_path / OUTPUT_NODES_NAME) == nodes
    assert set(NODE_TYPES) == {"full", "half1", "local_resolution", "report_pdf", "denoised_full",
                               "denoised_report_pdf"}


#: the interpretation map's files beside the filter's (output_names.INTERPRETATION), and how RELION sees them
INTERPRETATION_OUTPUTS = {"denoised_full": "denoised.mrc", "denoised_half1": "denoised_half1.mrc",
                          "denoised_half2": "denoised_half2.mrc", "denoised_summary": "denoised_summary.json",
                          "denoised_report_pdf": "denoised_report.pdf"}
INTERPRETATION_VIEW = {
    # 3.1: "final map" (11), as RELION types its own post-processed map: 3.1 offers it as no job's input
    "3.1": {"denoised.mrc": 11, "denoised_report.pdf": 13},
    "4.0": {"denoised.mrc": "DensityMap.mrc.locband.denoised", "denoised_report.pdf": "LogFile.pdf.relion"},
    "5.0": {"denoised.mrc": "DensityMap.mrc.locband.denoised", "denoised_report.pdf": "LogFile.pdf.relion"},
}


@pytest.mark.parametrize("version", sorted(VERSION_VIEW))
def test_interpretation_nodes_for_each_relion_version(tmp_path: Path, version: str) -> None:
    """The interpretation map is a map node; its halves (validation maps) and its summary are none."""
    write_output_nodes(tmp_path, build_output_nodes("External/job007/", {**OUTPUTS, **INTERPRETATION_OUTPUTS}))
    table = starfile.read(tmp_path / OUTPUT_NODES_NAME, always_dict=True)["output_nodes"]
    column, expected = VERSION_VIEW[version]
    got = {Path(n).name: v for n, v in zip(table["rlnPipeLineNodeName"], table[column], strict=True)}
    assert got == {**expected, **INTERPRETATION_VIEW[version]}


def test_node_name_with_blank_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="without blanks"):
        write_output_nodes(tmp_path, build_output_nodes("My Project/External/job007/", OUTPUTS))


# --------------------------------------------------------------------------------------------
# exit files
# --------------------------------------------------------------------------------------------

def _exit_files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir() if p.name.startswith("RELION_JOB_")}


def test_exit_file_on_success_replaces_stale_ones(tmp_path: Path) -> None:
    (tmp_path / ctl.RELION_JOB_EXIT_FAILURE).touch()  # from an earlier run of the same job
    with lifecycle.relion_job(tmp_path, stdout=io.StringIO(), stderr=io.StringIO()):
        assert _exit_files(tmp_path) == set()
    assert _exit_files(tmp_path) == {ctl.RELION_JOB_EXIT_SUCCESS}


def test_exit_file_on_bad_input_has_one_line_reason(tmp_path: Path) -> None:
    err = io.StringIO()
    with pytest.raises(InputFileError):
        with lifecycle.relion_job(tmp_path / "job", stdout=io.StringIO(), stderr=err):
            raise InputFileError("half-map 1 'x.mrc' does not exist")
    assert _exit_files(tmp_path / "job") == {ctl.RELION_JOB_EXIT_FAILURE}
    assert err.getvalue() == "locband: error: half-map 1 'x.mrc' does not exist\n"


def test_exit_file_on_crash_has_traceback(tmp_path: Path) -> None:
    err = io.StringIO()
    with pytest.raises(RuntimeError):
        with lifecycle.relion_job(tmp_path, stdout=io.StringIO(), stderr=err):
            raise RuntimeError("boom")
    assert _exit_files(tmp_path) == {ctl.RELION_JOB_EXIT_FAILURE}
    assert "Traceback" in err.getvalue() and "RuntimeError: boom" in err.getvalue()


def test_exit_file_on_interrupt(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with lifecycle.relion_job(tmp_path, stdout=io.StringIO(), stderr=io.StringIO()):
            raise KeyboardInterrupt
    assert _exit_files(tmp_path) == {ctl.RELION_JOB_EXIT_FAILURE}


def test_abort_between_engine_stages(tmp_path: Path) -> None:
    """RELION_JOB_ABORT_NOW appearing while the engine runs stops it at its next progress call."""
    from locband.engine.local import LocalFilter

    pair = synthetic_pair((24, 24, 24), noise_std=1.0, seed=1)
    calls: list[str] = []

    def user_presses_abort(fraction: float, message: str) -> None:
        calls.append(message)
        if len(calls) == 2:
            (tmp_path / ctl.RELION_JOB_ABORT_NOW).touch()

    with pytest.raises(JobAborted):
        with lifecycle.relion_job(tmp_path, stdout=io.StringIO(), stderr=io.StringIO()) as job:
            LocalFilter(pair.half1.shape, pixel_size_angstrom=1.0)(pair.half1, pair.half2,
                                                                   progress=job.progress(user_presses_abort))
    assert len(calls) == 2  # the engine stopped at the first check after the request
    assert _exit_files(tmp_path) == {ctl.RELION_JOB_EXIT_ABORTED}


def test_abort_requested_before_start(tmp_path: Path, refine_dir: Path) -> None:
    out = tmp_path / "External" / "job007"
    out.mkdir(parents=True)
    (out / ctl.RELION_JOB_ABORT_NOW).touch()
    rc = cli.main(["relion-external", "--o", f"{out}/", "--in_3dref", str(refine_dir)])
    assert rc == 1
    assert _exit_files(out) == {ctl.RELION_JOB_EXIT_ABORTED}
    assert not (out / "filtered.mrc").exists()


# --------------------------------------------------------------------------------------------
# the whole job through the CLI and the wrapper
# --------------------------------------------------------------------------------------------

def test_cli_job_writes_outputs_nodes_and_success(tmp_path: Path, refine_dir: Path) -> None:
    out = tmp_path / "External" / "job007"
    rc = cli.main(["relion-external", "--o", f"{out}/", "--in_3dref", str(refine_dir / "run_half1_class001_unfil.mrc"),
                   "--in_mask", str(refine_dir / "mask.mrc"), "--criterion", "0.143", "--apply_mask", "--j", "1",
                   "--some_future_option", "7", "--pipeline_control", f"{out}/"])
    assert rc == 0
    for name in ("filtered.mrc", "filtered_half1.mrc", "filtered_half2.mrc", "local_resolution.mrc",
                 "summary.json", "report.png", "report.pdf", OUTPUT_NODES_NAME, "locband.log"):
        assert (out / name).is_file(), name
    assert _exit_files(out) == {ctl.RELION_JOB_EXIT_SUCCESS}
    nodes = read_output_nodes(out / OUTPUT_NODES_NAME)
    assert {Path(n.name).name: n.type_code for n in nodes} == VERSION_VIEW["3.1"][1]
    assert "--some_future_option 7" in (out / "locband.log").read_text()


def test_cli_job_without_report(tmp_path: Path, refine_dir: Path) -> None:
    out = tmp_path / "job"
    rc = cli.main(["relion-external", "--o", str(out), "--in_3dref", str(refine_dir), "--report", "no"])
    assert rc == 0
    assert not (out / "report.pdf").exists()
    assert [Path(n.name).name for n in read_output_nodes(out / OUTPUT_NODES_NAME)] == [
        "filtered.mrc", "filtered_half1.mrc", "local_resolution.mrc"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--in_3dref", "nothing_half1.mrc"], "does not exist"),
        (["--criterion", "abc"], "--criterion must be a number"),
    ],
)
def test_cli_job_failure_writes_failure_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    extra: list[str], message: str) -> None:
    out = tmp_path / "job"
    assert cli.main(["relion-external", "--o", str(out), *extra]) == 1
    assert _exit_files(out) == {ctl.RELION_JOB_EXIT_FAILURE}
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_job_without_o_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["relion-external", "--in_3dref", "x.mrc"]) == 1
    assert "--o OUTPUT_FOLDER is required" in capsys.readouterr().err


def test_cli_job_with_unusable_o_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a_file").write_text("")
    assert cli.main(["relion-external", "--o", str(tmp_path / "a_file" / "job"), "--in_3dref", "x.mrc"]) == 1
    err = capsys.readouterr().err
    assert "cannot be created" in err and str(tmp_path / "a_file" / "job") in err


def _wrapper_env(python: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["LOCBAND_PYTHON"] = python
    return env


def test_wrapper_runs_the_job(tmp_path: Path, refine_dir: Path) -> None:
    out = tmp_path / "External" / "job002"
    proc = subprocess.run([str(WRAPPER), "--o", f"{out}/", "--in_3dref", str(refine_dir), "--report", "no",
                           "--j", "1"], env=_wrapper_env(sys.executable), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _exit_files(out) == {ctl.RELION_JOB_EXIT_SUCCESS}
    assert (out / "filtered.mrc").is_file()


def test_wrapper_writes_failure_when_python_cannot_start(tmp_path: Path) -> None:
    out = tmp_path / "External" / "job003"
    out.mkdir(parents=True)  # RELION creates the job folder before it starts fn_exe
    proc = subprocess.run([str(WRAPPER), "--o", f"{out}/", "--in_3dref", "x.mrc"],
                          env=_wrapper_env(str(tmp_path / "no-such-python")), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert _exit_files(out) == {ctl.RELION_JOB_EXIT_FAILURE}
    missing = tmp_path / "no-such-python"
    assert proc.stderr == f"locband-relion-external: LOCBAND_PYTHON={missing} is not an executable Python\n"


def test_cli_job_with_the_interpretation_map(tmp_path: Path, refine_dir: Path) -> None:
    """interpretation yes: the filter's set as before plus the interpretation map, one set, its nodes."""
    import json

    from locband.io.mrc import read_map
    from locband.io.outputs import inspect_output_set

    a, b, c = tmp_path / "External" / "job007", tmp_path / "plain", tmp_path / "denoise"
    h1 = str(refine_dir / "run_half1_class001_unfil.mrc")
    assert cli.main(["relion-external", "--o", f"{a}/", "--in_3dref", h1, "--in_mask", str(refine_dir / "mask.mrc"),
                     "--interpretation", "--molecular_mass_kda", "40", "--positivity", "no", "--j", "1"]) == 0
    assert _exit_files(a) == {ctl.RELION_JOB_EXIT_SUCCESS}
    nodes = {Path(n.name).name: (n.type_code, n.type_label) for n in read_output_nodes(a / OUTPUT_NODES_NAME)}
    assert {k: v[0] for k, v in nodes.items()} == {**VERSION_VIEW["3.1"][1], **INTERPRETATION_VIEW["3.1"]}
    assert nodes["denoised.mrc"][1] == INTERPRETATION_VIEW["5.0"]["denoised.mrc"]
    for name in INTERPRETATION_OUTPUTS.values():
        assert (a / name).is_file(), name
    with mrcfile.open(a / "denoised.mrc") as m:
        assert "FOR INTERPRETATION, NOT FOR AVERAGING" in " ".join(m.get_labels())
    # one output set: one manifest, one run id in both summaries, every file listed
    state = inspect_output_set(a)
    assert state.complete and set(INTERPRETATION_OUTPUTS.values()) <= set(state.manifest["files"])
    summary = json.loads((a / "summary.json").read_text())
    denoised = json.loads((a / "denoised_summary.json").read_text())
    assert summary["run_id"] == denoised["run_id"] == state.run_id
    assert denoised["command"] == "denoise" and "never average it again" in denoised["use"]
    assert denoised["settings"]["positivity"] is False and denoised["settings"]["physical"]["molecular_mass_kda"] == 40
    assert summary["outputs"]["denoised_full"] == str(a / "denoised.mrc")
    assert summary["outputs"]["denoised_report_pdf"] == denoised["outputs"]["report_pdf"] == str(a / "denoised_report.pdf")
    # the local-resolution map is written once: the filter's, the same map the interpretation run measured
    assert denoised["outputs"]["local_resolution"] == str(a / "local_resolution.mrc")
    assert denoised["local_resolution_angstrom"]["p50"] == pytest.approx(summary["local_resolution_angstrom"]["p50"],
                                                                        rel=1e-6)  # float32 percentiles, same map
    # the filter's maps are those of a job without the interpretation map; the interpretation map is
    # `locband denoise`'s with the same settings (same code path, identical to the last bit)
    assert cli.main(["relion-external", "--o", str(b), "--in_3dref", h1, "--in_mask", str(refine_dir / "mask.mrc"),
                     "--j", "1"]) == 0
    np.testing.assert_array_equal(read_map(a / "filtered.mrc").data, read_map(b / "filtered.mrc").data)
    assert cli.main(["denoise", h1, str(refine_dir / "run_half2_class001_unfil.mrc"), "--mask",
                     str(refine_dir / "mask.mrc"), "--molecular-mass-kda", "40", "--no-positivity", "--threads", "1",
                     "--out-dir", str(c), "--quiet", "--no-report"]) == 0
    for name in ("denoised.mrc", "denoised_half1.mrc", "denoised_half2.mrc"):
        np.testing.assert_array_equal(read_map(a / name).data, read_map(c / name).data)
    # the same job again without it: the interpretation map, its files and its nodes are gone
    assert cli.main(["relion-external", "--o", f"{a}/", "--in_3dref", h1, "--j", "1", "--report", "no"]) == 0
    assert not any((a / name).exists() for name in INTERPRETATION_OUTPUTS.values())
    assert "denoised.mrc" not in {Path(n.name).name for n in read_output_nodes(a / OUTPUT_NODES_NAME)}


def test_cli_job_interpretation_settings_need_the_switch(tmp_path: Path, refine_dir: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "job"
    assert cli.main(["relion-external", "--o", str(out), "--in_3dref", str(refine_dir), "--molecular_mass_kda",
                     "40"]) == 1
    assert _exit_files(out) == {ctl.RELION_JOB_EXIT_FAILURE}
    assert ("job parameter --molecular_mass_kda is a setting of the interpretation map, which is off: turn on job "
            "parameter --interpretation") in capsys.readouterr().err
    assert not (out / "filtered.mrc").exists()


def test_outputs_match_filter_command(tmp_path: Path, refine_dir: Path) -> None:
    """The External job is `locband filter` plus RELION plumbing: same maps for the same settings."""
    from locband.io.mrc import read_map

    a, b = tmp_path / "ext", tmp_path / "flt"
    assert cli.main(["relion-external", "--o", str(a), "--in_3dref", str(refine_dir), "--report", "no",
                     "--criterion", "0.3"]) == 0
    assert cli.main(["filter", str(refine_dir / "run_half1_class001_unfil.mrc"),
                     str(refine_dir / "run_half2_class001_unfil.mrc"), "--out-dir", str(b), "--no-report",
                     "--criterion", "0.3", "--quiet"]) == 0
    # same code path on the same data: identical to the last bit
    np.testing.assert_array_equal(read_map(a / "filtered.mrc").data, read_map(b / "filtered.mrc").data)
