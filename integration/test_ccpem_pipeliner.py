"""The real CCP-EM pipeliner (ccpem-pipeliner from PyPI) runs locband's jobs in a real project.

What a Doppio or eBIC user relies on: the pipeliner finds the job through its entry point, a
project made with ``pipeliner --new_project`` runs it from a ``--default_jobstar`` file with
``--run_job`` (and from Python as Doppio calls ``PipelinerProject.run_job``), the job ends as
"Succeeded" with typed output nodes in ``default_pipeline.star``, the results display objects that
``pipeliner.regenerate_results`` writes for Doppio parse, and bad input stops the job with
locband's own message. The interpretation map's job (``locband.postprocess.local_denoising``) the
same way: it runs end to end, its nodes are typed, its display objects (the cross-validation
curves too) parse, and its settings are checked before the job exists. Also what RELION 3.1's
``relion_pipeliner`` does to such a project, since both programs keep their books in
``default_pipeline.star``.

``default_pipeline.star`` is read with locband's one reader of RELION 3.1 / 4.0 / 5.0 pipeline files,
:func:`locband.io.relion_pipeline.read_pipeline` (the pipeliner writes the 4.0/5.0 label columns).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from locband.engine.synthetic import synthetic_pair
from locband.io.mrc import write_map
from locband.io.relion_pipeline import read_pipeline

pytestmark = pytest.mark.integration
pytest.importorskip("pipeliner", reason="the CCP-EM pipeliner is not installed: pip install 'locband[ccpem]'")

from pipeliner.display_tools import create_results_display_object  # noqa: E402
from pipeliner.utils import get_regenerate_results_command  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
JOB_TYPE = "locband.postprocess.local_filter"
DENOISE_JOB_TYPE = "locband.postprocess.local_denoising"
JOB = "LocBand/job001/"
TIMEOUT_S = 180  # a 32^3 job takes a few seconds; a hang must fail the test, not the CI run
HALF1, HALF2, MASK = ("Refine3D/job001/run_half1_class001_unfil.mrc", "Refine3D/job001/run_half2_class001_unfil.mrc",
                      "MaskCreate/job002/mask.mrc")
EXIT_FILES = {"PIPELINER_JOB_EXIT_SUCCESS": "Succeeded", "PIPELINER_JOB_EXIT_FAILED": "Failed",
              "PIPELINER_JOB_EXIT_ABORTED": "Aborted"}
NODE_TYPES = {
    f"{JOB}filtered.mrc": "DensityMap.mrc.locband.localfilter",
    f"{JOB}filtered_half1.mrc": "DensityMap.mrc.locband.localfilter.halfmap",
    f"{JOB}filtered_half2.mrc": "DensityMap.mrc.locband.localfilter.halfmap",
    f"{JOB}local_resolution.mrc": "Image3D.mrc.locband.localresmap",
    f"{JOB}summary.json": "ProcessData.json.locband.summary",
    f"{JOB}report.pdf": "LogFile.pdf.locband.report",
}
DENOISE_NODE_TYPES = {
    f"{JOB}denoised.mrc": "DensityMap.mrc.locband.denoised",
    f"{JOB}denoised_half1.mrc": "DensityMap.mrc.locband.denoised.crossvalidation",
    f"{JOB}denoised_half2.mrc": "DensityMap.mrc.locband.denoised.crossvalidation",
    f"{JOB}local_resolution.mrc": "Image3D.mrc.locband.localresmap",
    f"{JOB}summary.json": "ProcessData.json.locband.denoised.summary",
    f"{JOB}report.pdf": "LogFile.pdf.locband.denoised.report",
}


def _program(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed beside {sys.executable} nor on PATH although pipeliner imports")
    return found


def _env(project: Path) -> dict[str, str]:
    # the pipeliner writes a settings file under $XDG_CONFIG_HOME on first use: keep it in the test folder
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            "XDG_CONFIG_HOME": str(project.parent / "config")}


def _run(cmd: list[str], project: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=project, env=_env(project), capture_output=True, text=True, timeout=TIMEOUT_S)
    if check:
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _pipeliner(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run([_program("pipeliner"), *args], project, check=check)


def _pipeline(project: Path) -> tuple[dict[str, tuple[str | None, str]], dict[str, int | str]]:
    """Processes (name -> (type label, status label)) and nodes (name -> type) of the project's pipeline."""
    books = read_pipeline(project / "default_pipeline.star")
    return ({name: (p.type_label, p.status.value) for name, p in books.processes.items()},
            {name: n.type for name, n in books.nodes.items()})


def _set_options(jobstar: Path, **values: str) -> None:
    """Fill in a --default_jobstar file as a user would in an editor (one `name value` line each)."""
    lines = jobstar.read_text().splitlines()
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) == 2 and words[0] in values:
            lines[i] = f"{words[0]} {values.pop(words[0])}"
    assert not values, f"options not in {jobstar.name}: {sorted(values)}"
    jobstar.write_text("\n".join(lines) + "\n")


def _wait_for_exit(job: Path) -> str:
    """The job runner's verdict (its exit file), waiting for the detached runner to finish."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for name, status in EXIT_FILES.items():
            if (job / name).is_file():
                return status
        time.sleep(0.2)
    pytest.fail(f"{job} wrote no exit file within {TIMEOUT_S} s:\n{_log(job)}")


def _log(job: Path) -> str:
    return "".join(f"--- {n}\n{(job / n).read_text()}" for n in ("run.out", "run.err") if (job / n).is_file())


def _update_status(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What Doppio does when it looks at the project: open the pipeline for writing and collect finished jobs."""
    from pipeliner import user_settings
    from pipeliner.api.manage_project import PipelinerProject
    from pipeliner.project_graph import ProjectGraph

    monkeypatch.chdir(project)
    monkeypatch.setenv("XDG_CONFIG_HOME", _env(project)["XDG_CONFIG_HOME"])
    monkeypatch.setattr(user_settings, "_settings", None)
    with ProjectGraph(name=PipelinerProject().pipeline_name, read_only=False) as graph:
        graph.check_process_completion()


def _new_project(root: Path) -> Path:
    project = root / "project"
    project.mkdir()
    _pipeliner(project, "--new_project")
    pair = synthetic_pair((32, 32, 32), noise_std=1.0, seed=11)
    for path, vol, px in ((HALF1, pair.half1, 2.0), (HALF2, pair.half2, 2.0), (MASK, pair.mask, 2.0),
                          ("coarse_half2.mrc", pair.half2, 2.5), ("bad_mask.mrc", pair.mask * 3.0, 2.0)):
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        write_map(project / path, vol, pixel_size_angstrom=px)
    return project


def _jobstar(project: Path, job_type: str = JOB_TYPE, **values: str) -> Path:
    _pipeliner(project, "--default_jobstar", job_type)
    jobstar = project / f"{job_type.replace('.', '_')}_job.star"
    _set_options(jobstar, **values)
    return jobstar


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project in which `pipeliner --run_job` ran the locband job to the end (status not yet collected)."""
    project = _new_project(tmp_path_factory.mktemp("ccpem"))
    jobstar = _jobstar(project, half_map_1=HALF1, half_map_2=HALF2, mask=MASK)
    ran = _pipeliner(project, "--run_job", jobstar.name)
    assert f"Ran job as: {JOB}" in ran.stdout, ran.stdout + ran.stderr
    assert _wait_for_exit(project / JOB) == "Succeeded", _log(project / JOB)
    yield project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return _new_project(tmp_path)


@pytest.fixture(scope="module")
def denoised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project in which `pipeliner --run_job` ran the interpretation map's job to the end."""
    project = _new_project(tmp_path_factory.mktemp("ccpem_denoise"))
    jobstar = _jobstar(project, DENOISE_JOB_TYPE, half_map_1=HALF1, half_map_2=HALF2, mask=MASK,
                       molecular_mass_kda="20", positivity="No")
    ran = _pipeliner(project, "--run_job", jobstar.name)
    assert f"Ran job as: {JOB}" in ran.stdout, ran.stdout + ran.stderr
    assert _wait_for_exit(project / JOB) == "Succeeded", _log(project / JOB)
    yield project


def test_pipeliner_lists_the_job_and_finds_locband(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    listed = _pipeliner(tmp_path / "p", "--check_jobs", "locband").stdout
    assert JOB_TYPE in listed and DENOISE_JOB_TYPE in listed
    # available: the program was found (this installation's) and `locband --version` ran
    assert "  * locband:\n    version: " in listed and f"path: {_program('locband')}\n" in listed


def test_run_job_from_the_command_line_succeeds_with_typed_nodes(finished: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _update_status(finished, monkeypatch)
    processes, nodes = _pipeline(finished)
    assert processes[JOB] == (JOB_TYPE, "Succeeded"), _log(finished / JOB)
    assert {n: t for n, t in nodes.items() if n.startswith(JOB)} == NODE_TYPES
    assert nodes[HALF1] == "DensityMap.mrc.halfmap" and nodes[MASK] == "Mask3D.mrc"  # the job's inputs
    assert all((finished / n).is_file() for n in NODE_TYPES)
    note = (finished / JOB / "note.txt").read_text()
    assert f"{_program('locband')} filter {HALF1} {HALF2} --mask {MASK} " in note
    assert f"--out-dir {JOB} --quiet" in note
    assert "locband filter: wrote LocBand/job001/ | FSC=0.143 at" in (finished / JOB / "run.out").read_text()
    assert (finished / JOB / "run.err").read_text() == ""


def test_results_display_written_for_doppio_parses(finished: Path) -> None:
    _run([*get_regenerate_results_command(), "--jobs", JOB], finished)
    files = sorted((finished / JOB).glob(".results_display*.json"))
    objects = [create_results_display_object(**json.loads(f.read_text())) for f in files]
    kinds = [o.dobj_type for o in objects]
    assert kinds == ["table", "graph", "histogram", "montage", "mapmodel", "image"], [
        getattr(o, "reason", "") for o in objects]
    montage = objects[3]
    assert (finished / montage.img).is_file() and f"{JOB}filtered.mrc" in montage.associated_data
    assert sum(objects[2].bins) > 0 and objects[1].xrange[1] == pytest.approx(0.25)  # Nyquist at 2 Å/voxel


def test_interpretation_job_runs_with_typed_nodes(denoised: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _update_status(denoised, monkeypatch)
    processes, nodes = _pipeline(denoised)
    assert processes[JOB] == (DENOISE_JOB_TYPE, "Succeeded"), _log(denoised / JOB)
    assert {n: t for n, t in nodes.items() if n.startswith(JOB)} == DENOISE_NODE_TYPES
    assert all((denoised / n).is_file() for n in DENOISE_NODE_TYPES)
    note = (denoised / JOB / "note.txt").read_text()
    assert f"{_program('locband')} denoise {HALF1} {HALF2} --mask {MASK} " in note
    assert "--no-positivity" in note and "--molecular-mass-kda 20" in note and f"--out-dir {JOB} --quiet" in note
    assert "for interpretation, not for averaging" in (denoised / JOB / "run.out").read_text()
    summary = json.loads((denoised / JOB / "summary.json").read_text())
    assert summary["command"] == "denoise" and summary["settings"]["positivity"] is False


def test_interpretation_results_display_parses(denoised: Path) -> None:
    _run([*get_regenerate_results_command(), "--jobs", JOB], denoised)
    files = sorted((denoised / JOB).glob(".results_display*.json"))
    objects = [create_results_display_object(**json.loads(f.read_text())) for f in files]
    kinds = [o.dobj_type for o in objects]
    assert kinds == ["table", "graph", "graph", "histogram", "montage", "mapmodel", "image"], [
        getattr(o, "reason", "") for o in objects]
    cross = objects[2]
    assert cross.title.startswith("Cross-validation") and len(cross.yvalues) == 3  # raw, denoised, linear
    assert f"{JOB}denoised.mrc" in objects[4].associated_data


def test_interpretation_settings_are_refused_before_the_job_exists(project: Path) -> None:
    jobstar = _jobstar(project, DENOISE_JOB_TYPE, half_map_1=HALF1, half_map_2=HALF2, bfactor="-50", sharpen="No")
    ran = _pipeliner(project, "--run_job", jobstar.name, check=False)
    assert ran.returncode != 0
    assert ("job option bfactor (one global B-factor) and job option sharpen (no sharpening) exclude each other"
            in ran.stdout + ran.stderr)
    processes, _ = _pipeline(project)
    assert processes == {} and not (project / "LocBand").exists()


# the pipeliner launches the job runner detached and never waits for it (its Popen object warns when freed)
@pytest.mark.filterwarnings(r"ignore:subprocess \d+ is still running:ResourceWarning")
def test_python_api_as_doppio_runs_the_job(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeliner.api.manage_project import PipelinerProject

    _update_status(project, monkeypatch)  # cwd, settings folder
    proj = PipelinerProject()
    job = proj.run_job({"_rlnJobTypeLabel": JOB_TYPE, "half_map_1": HALF1, "half_map_2": HALF2,
                        "nr_threads": "1", "band_snr": "Yes", "report": "No"})
    assert proj.wait_for_job_to_finish(job, ping=0.2, timeout=TIMEOUT_S) == "Succeeded", _log(project / JOB)
    _update_status(project, monkeypatch)
    processes, nodes = _pipeline(project)
    assert processes[JOB] == (JOB_TYPE, "Succeeded")
    assert nodes[f"{JOB}band_snr.mrc"] == "Image3D.mrc.locband.bandsnr" and f"{JOB}report.pdf" not in nodes


def test_half_maps_that_differ_are_refused_before_the_job_exists(project: Path) -> None:
    jobstar = _jobstar(project, half_map_1=HALF1, half_map_2="coarse_half2.mrc")
    ran = _pipeliner(project, "--run_job", jobstar.name, check=False)
    assert ran.returncode != 0
    assert (f"half-maps differ in voxel size: {HALF1} says 2.0000 Å, coarse_half2.mrc says 2.5000 Å"
            in ran.stdout + ran.stderr)
    processes, _ = _pipeline(project)
    assert processes == {} and not (project / "LocBand").exists()


def test_bad_mask_fails_the_job_with_locbands_message(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the header is fine (validation passes); the values are not, which only locband's run can see
    jobstar = _jobstar(project, half_map_1=HALF1, half_map_2=HALF2, mask="bad_mask.mrc")
    _pipeliner(project, "--run_job", jobstar.name)
    assert _wait_for_exit(project / JOB) == "Failed"
    _update_status(project, monkeypatch)
    processes, nodes = _pipeline(project)
    assert processes[JOB] == (JOB_TYPE, "Failed")
    assert not [n for n in nodes if n.startswith(JOB)]  # no output node is offered to later jobs
    err = (project / JOB / "run.err").read_text()
    assert "locband filter: error: mask 'bad_mask.mrc' must hold values in [0, 1], found min 0 and max 3" in err
    assert not list((project / JOB).glob("*.mrc"))  # all-or-nothing outputs


@pytest.fixture
def relion31() -> str:
    exe = shutil.which("relion_pipeliner")
    if exe is None:
        pytest.skip("relion_pipeliner (RELION 3.1) is not on PATH: apt-get install relion")
    return exe


def test_relion31_pipeliner_leaves_a_pipeliner_project_as_it_was(finished: Path, relion31: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    project = Path(shutil.copytree(finished, tmp_path / "copy"))
    _update_status(project, monkeypatch)
    before = (project / "default_pipeline.star").read_bytes()
    proc = _run([relion31, "--RunJobs", JOB, "--sec_wait_after", "0"], project, check=False)
    # RELION 3.1 cannot read the pipeliner's (RELION 5.0-style) pipeline file and stops before writing it
    assert proc.returncode != 0
    assert "cannot find name or type in pipeline_nodes table" in proc.stdout + proc.stderr
    assert (project / "default_pipeline.star").read_bytes() == before
    # ... but leaves its lock behind, which blocks the pipeliner (60 s, then an error) until removed
    assert (project / ".relion_lock" / "lock_default_pipeline.star").is_file()
    shutil.rmtree(project / ".relion_lock")
    _update_status(project, monkeypatch)
    processes, nodes = _pipeline(project)
    assert processes[JOB] == (JOB_TYPE, "Succeeded")
    assert {n: t for n, t in nodes.items() if n.startswith(JOB)} == NODE_TYPES


def _relion31_project(project: Path, relion31: str, job: str) -> Path:
    """A RELION 3.1 project next to ``project`` whose pipeline holds one finished job of RELION 3.1."""
    relion_project = project.parent / "relion31"
    relion_project.mkdir()
    for path in (HALF1, HALF2, MASK):
        (relion_project / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(project / path, relion_project / path)
    (relion_project / "default_pipeline.star").write_text(
        "# version 30001\n\ndata_pipeline_general\n\n_rlnPipeLineJobCounter                       1\n")
    if job == "External":  # locband's own RELION External job, with the shipped recipe
        env = {"LOCBAND_EXE": str(REPO / "wrappers" / "locband-relion-external"), "LOCBAND_PYTHON": sys.executable,
               "HALF1": HALF1, "MASK": MASK, "THREADS": "1", "SEC_WAIT_AFTER": "0"}
        add = subprocess.run(["bash", str(REPO / "templates" / "relion" / "pipeliner_addjob.sh")], cwd=relion_project,
                             env={**_env(relion_project), **env}, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert add.returncode == 0, add.stdout + add.stderr
    else:
        _run([relion31, "--addJob", "Import", "--addJobOptions",
              f"do_raw == No;do_other == Yes;fn_in_other == {MASK};node_type == 3D mask (.mrc);"], relion_project)
        _run([relion31, "--RunJobs", "Import/job001/", "--sec_wait_after", "0"], relion_project)
    books = (relion_project / "default_pipeline.star").read_text()
    assert books.startswith("\n# version 30001") and f"{job}/job001/       None" in books, books
    return relion_project


@pytest.mark.parametrize("job", ["External", "Import"])
def test_pipeliner_keeps_relion31_books_byte_for_byte(project: Path, relion31: str, job: str) -> None:
    """A RELION 3.1 project opened by the pipeliner: RELION's file survives, in place or as .old."""
    relion_project = _relion31_project(project, relion31, job)
    books = (relion_project / "default_pipeline.star").read_bytes()
    shutil.copy(_jobstar(project, half_map_1=HALF1, half_map_2=HALF2), relion_project / "job.star")
    _pipeliner(relion_project, "--run_job", "job.star", check=False)
    now = (relion_project / "default_pipeline.star").read_bytes()
    old = relion_project / "default_pipeline.star.old"
    if job == "External" and now == books:
        # pipeliner 1.6.1 cannot convert process type 99 (External) and stops: RELION 3.1 goes on as before
        proc = _run([relion31, "--check_job_completion"], relion_project, check=False)
        assert proc.returncode == 0 and "ERROR" not in proc.stdout + proc.stderr
        assert (relion_project / "default_pipeline.star").read_bytes() == books
    else:
        # the pipeliner converted RELION 3.1's pipeline to its own format, keeping the original as .old
        assert now.startswith(b"\n# version 50001") and old.read_bytes() == books
