"""RELION's own relion_pipeliner (3.1 and 5.0.1) adds and runs locband's External job on synthetic half-maps.

Checks what a RELION user relies on: the job reaches status "finished" in default_pipeline.star
and its outputs are registered as nodes later jobs can pick (3.1: integer node types, 5.0: type
labels; both read by ``locband.io.relion_pipeline``). Uses the shipped templates
(pipeliner_addjob.sh and external_job.star) so that those are exercised by the real program; the
pipeline file's ``# version`` line shows which RELION wrote it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import starfile
from relion_installs import INSTALLS, RelionInstall, require, star_version

from locband.engine.synthetic import synthetic_pair
from locband.io.mrc import write_map
from locband.io.relion_pipeline import PipelineNode, ProcessStatus, read_pipeline

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
WRAPPER = REPO / "wrappers" / "locband-relion-external"
TEMPLATES = REPO / "templates" / "relion"
TIMEOUT_S = 300  # 3.1 polls for the exit file every 10 s; a hang must fail the test, not the CI run

# A fresh project's pipeline as RELION 3.1 writes it; RELION 5 reads it and writes its own format back.
EMPTY_PIPELINE = "# version 30001\n\ndata_pipeline_general\n\n_rlnPipeLineJobCounter                       1\n"
# Node types of the External job's outputs: RELION 3.1 integer codes (src/pipeline_jobs.h), 4.0/5.0 labels.
NODE_TYPES = {
    3: {"filtered.mrc": 6, "filtered_half1.mrc": 10, "local_resolution.mrc": 12, "report.pdf": 13},
    5: {"filtered.mrc": "DensityMap.mrc", "filtered_half1.mrc": "DensityMap.mrc.halfmap",
        "local_resolution.mrc": "Image3D.mrc.localresmap", "report.pdf": "LogFile.pdf.relion"},
}
# With the job parameter interpretation yes: the interpretation map as RELION types its own post-processed
# map (3.1: final map, offered as no job's input; 4.0/5.0: a DensityMap), its report; its halves are no nodes.
INTERPRETATION_NODE_TYPES = {
    3: {"denoised.mrc": 11, "denoised_report.pdf": 13},
    5: {"denoised.mrc": "DensityMap.mrc.locband.denoised", "denoised_report.pdf": "LogFile.pdf.relion"},
}


@pytest.fixture
def project(relion: RelionInstall, tmp_path: Path) -> Path:
    pair = synthetic_pair((32, 32, 32), noise_std=1.0, seed=11)
    (tmp_path / "Refine3D" / "job001").mkdir(parents=True)
    write_map(tmp_path / "Refine3D/job001/run_half1_class001_unfil.mrc", pair.half1, pixel_size_angstrom=2.0)
    write_map(tmp_path / "Refine3D/job001/run_half2_class001_unfil.mrc", pair.half2, pixel_size_angstrom=2.0)
    write_map(tmp_path / "mask.mrc", pair.mask, pixel_size_angstrom=2.0)
    (tmp_path / "default_pipeline.star").write_text(EMPTY_PIPELINE)
    return tmp_path


def _env(relion: RelionInstall) -> dict[str, str]:
    """This RELION first on PATH (for relion_pipeliner and the jobs it starts), locband's Python for the wrapper."""
    env = {k: v for k, v in relion.environment().items() if k != "PYTHONPATH"}
    env["LOCBAND_PYTHON"] = sys.executable  # the wrapper adds the checkout's plugin/ itself
    return env


def _run(relion: RelionInstall, cmd: list[str], cwd: Path,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env or _env(relion), capture_output=True, text=True, timeout=TIMEOUT_S)


def _pipeline(relion: RelionInstall, project: Path) -> tuple[dict[str, ProcessStatus], dict[str, PipelineNode]]:
    path = project / "default_pipeline.star"
    assert star_version(path) == relion.star_version, f"{path} was not written by RELION {relion.name}"
    pipeline = read_pipeline(path)
    return {name: p.status for name, p in pipeline.processes.items()}, pipeline.nodes


def _job_nodes(relion: RelionInstall, nodes: dict[str, PipelineNode], job: str) -> dict[str, int | str]:
    """The job's output nodes by file name, with the node type in the column this RELION writes."""
    typed = {Path(n).name: node for n, node in nodes.items() if n.startswith(job)}
    if relion.major >= 4:
        assert all(node.type_code is None for node in typed.values())  # 4.0/5.0 write labels only
    else:
        assert all(node.type_label is None for node in typed.values())  # 3.1 writes integer codes only
    return {name: node.type for name, node in typed.items()}


def _job_log(job: Path) -> str:
    return "".join((job / n).read_text() for n in ("run.out", "run.err") if (job / n).exists())


def test_recipe_adds_and_runs_the_job(relion: RelionInstall, project: Path) -> None:
    env = {**_env(relion), "LOCBAND_EXE": str(WRAPPER), "HALF1": "Refine3D/job001/run_half1_class001_unfil.mrc",
           "MASK": "mask.mrc", "THREADS": "1", "SEC_WAIT_AFTER": "0"}
    proc = _run(relion, ["bash", str(TEMPLATES / "pipeliner_addjob.sh")], project, env)
    job = project / "External" / "job001"
    assert proc.returncode == 0, proc.stdout + proc.stderr + _job_log(job)
    status, nodes = _pipeline(relion, project)
    assert status["External/job001/"] == ProcessStatus.SUCCEEDED
    assert _job_nodes(relion, nodes, "External/job001/") == NODE_TYPES[relion.major]
    assert (job / "RELION_JOB_EXIT_SUCCESS").is_file()
    assert (job / "report.png").is_file()
    # RELION ran exactly the command line our parser was tested on, order included
    assert f"{WRAPPER} --o External/job001/ --in_3dref Refine3D/job001/run_half1_class001_unfil.mrc --in_mask " \
           "mask.mrc --criterion 0.143 --noise_threshold 1 --apply_mask no" in (job / "note.txt").read_text()


def test_job_star_template_loads_and_runs_on_a_refine3d_folder(relion: RelionInstall, project: Path) -> None:
    options = f"fn_exe == {WRAPPER};in_3dref == Refine3D/job001;in_mask == mask.mrc;nr_threads == 1;"
    add = _run(relion, ["relion_pipeliner", "--addJobFromStar", str(TEMPLATES / "external_job.star"),
                        "--addJobOptions", options], project)
    assert add.returncode == 0, add.stdout + add.stderr
    run = _run(relion, ["relion_pipeliner", "--RunJobs", "External/job001/", "--sec_wait_after", "0"], project)
    job = project / "External" / "job001"
    assert run.returncode == 0, run.stdout + run.stderr
    status, nodes = _pipeline(relion, project)
    assert status["External/job001/"] == ProcessStatus.SUCCEEDED, _job_log(job)
    assert _job_nodes(relion, nodes, "External/job001/") == NODE_TYPES[relion.major]


def test_job_star_template_with_the_interpretation_map(relion: RelionInstall, project: Path) -> None:
    """The template's switch turned on (and a setting of the interpretation map added) from --addJobOptions."""
    options = (f"fn_exe == {WRAPPER};in_3dref == Refine3D/job001;in_mask == mask.mrc;nr_threads == 1;"
               "param5_value == yes;param6_label == molecular_mass_kda;param6_value == 20;")
    add = _run(relion, ["relion_pipeliner", "--addJobFromStar", str(TEMPLATES / "external_job.star"),
                        "--addJobOptions", options], project)
    assert add.returncode == 0, add.stdout + add.stderr
    run = _run(relion, ["relion_pipeliner", "--RunJobs", "External/job001/", "--sec_wait_after", "0"], project)
    job = project / "External" / "job001"
    assert run.returncode == 0, run.stdout + run.stderr
    status, nodes = _pipeline(relion, project)
    assert status["External/job001/"] == ProcessStatus.SUCCEEDED, _job_log(job)
    assert _job_nodes(relion, nodes, "External/job001/") == {**NODE_TYPES[relion.major],
                                                             **INTERPRETATION_NODE_TYPES[relion.major]}
    assert "--interpretation yes --molecular_mass_kda 20" in (job / "note.txt").read_text()
    for name in ("denoised_half1.mrc", "denoised_half2.mrc", "denoised_summary.json", "denoised_report.png"):
        assert (job / name).is_file(), name
    assert "interpretation map (denoised.mrc): for model building" in (job / "run.out").read_text()


def test_failing_job_is_marked_failed_not_left_running(relion: RelionInstall, project: Path) -> None:
    # The input must exist: RELION 3.1's --RunJobs waits (without limit) for missing input nodes to
    # appear before it starts a job. mask.mrc exists but is no half-map, so locband must fail.
    options = f"fn_exe == {WRAPPER};in_3dref == mask.mrc;nr_threads == 1;"
    assert _run(relion, ["relion_pipeliner", "--addJob", "External", "--addJobOptions", options],
                project).returncode == 0
    _run(relion, ["relion_pipeliner", "--RunJobs", "External/job001/", "--sec_wait_after", "0"], project)
    job = project / "External" / "job001"
    status, nodes = _pipeline(relion, project)
    assert status["External/job001/"] == ProcessStatus.FAILED
    assert _job_nodes(relion, nodes, "External/job001/") == {}
    assert (job / "RELION_JOB_EXIT_FAILURE").is_file()
    err = (job / "run.err").read_text()
    assert "mask.mrc" in err and "cannot find the other half-map" in err


def test_wrapper_under_a_relion_named_path_gets_pipeline_control(relion: RelionInstall, project: Path) -> None:
    """RELION appends --pipeline_control to any command containing "relion_"; the job must accept it."""
    bindir = project / "relion_tools"
    bindir.mkdir()
    (bindir / "locband-relion-external").symlink_to(WRAPPER)
    options = f"fn_exe == {bindir / 'locband-relion-external'};in_3dref == Refine3D/job001;nr_threads == 1;"
    assert _run(relion, ["relion_pipeliner", "--addJob", "External", "--addJobOptions", options],
                project).returncode == 0
    _run(relion, ["relion_pipeliner", "--RunJobs", "External/job001/", "--sec_wait_after", "0"], project)
    job = project / "External" / "job001"
    assert "--pipeline_control External/job001/" in (job / "note.txt").read_text()
    status, _ = _pipeline(relion, project)
    assert status["External/job001/"] == ProcessStatus.SUCCEEDED, _job_log(job)


def test_queue_template_filled_in_by_relion(relion: RelionInstall, project: Path) -> None:
    """RELION fills in slurm_qsub.sh itself; 'bash' stands in for sbatch (the #SBATCH lines are comments)."""
    options = (f"fn_exe == {WRAPPER};in_3dref == Refine3D/job001/run_half1_class001_unfil.mrc;in_mask == mask.mrc;"
               f"nr_threads == 2;do_queue == Yes;qsub == bash;qsubscript == {TEMPLATES / 'slurm_qsub.sh'};"
               "queuename == cpu;")
    assert _run(relion, ["relion_pipeliner", "--addJob", "External", "--addJobOptions", options],
                project).returncode == 0
    _run(relion, ["relion_pipeliner", "--RunJobs", "External/job001/", "--sec_wait_after", "0"], project)
    job = project / "External" / "job001"
    script = (job / "run_submit.script").read_text()
    assert "#SBATCH --cpus-per-task=2\n" in script and "export OMP_NUM_THREADS=2\n" in script
    assert re.search(r"XXX\w+XXX", script) is None  # every placeholder is one RELION knows
    assert f"{WRAPPER} --o External/job001/" in script and " --j 2" in script
    status, nodes = _pipeline(relion, project)
    assert status["External/job001/"] == ProcessStatus.SUCCEEDED, _job_log(job)
    assert _job_nodes(relion, nodes, "External/job001/") == NODE_TYPES[relion.major]


def test_schedule_template_is_read_by_relion_scheduler(tmp_path: Path) -> None:
    """relion_scheduler 3.1 reads the shipped Schedule and sets a variable in it (read + write round trip).

    RELION 4.0/5.0 have no Schedules (``relion_schemer`` reads Schemes): see test_relion_scheme.py.
    """
    relion = require(INSTALLS["3.1"], "relion_scheduler")
    shutil.copytree(TEMPLATES / "schedule_3.1" / "Schedules", tmp_path / "Schedules")
    proc = _run(relion, ["relion_scheduler", "--schedule", "locband_refine", "--set_var", "mask", "--value",
                         "mask.mrc"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert star_version(tmp_path / "Schedules/locband_refine/schedule.star") == relion.star_version
    sched = starfile.read(tmp_path / "Schedules/locband_refine/schedule.star", always_dict=True)
    strings = dict(zip(sched["schedule_strings"]["rlnScheduleStringVariableName"],
                       sched["schedule_strings"]["rlnScheduleStringVariableValue"], strict=True))
    assert strings["mask"] == "mask.mrc"
    edges = sched["schedule_edges"]
    assert list(zip(edges["rlnScheduleEdgeInputNodeName"], edges["rlnScheduleEdgeOutputNodeName"], strict=True)) == [
        ("refine", "locband")]
