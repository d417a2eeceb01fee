"""RELION 5.0.1's relion_schemer runs the shipped Scheme: Refine3D, then locband's External job on its half-maps.

``templates/relion/scheme_5.0/Schemes/locband_refine`` is copied into a project holding the CI data
set (``relion_phantom.py``), its variables are set with ``relion_schemer --set_var``, and
``relion_schemer --run`` runs it: a 3D auto-refine to convergence with ``mpirun -n 3`` (coarse
sampling for speed, set in the copied ``refine/job.star`` as a user would), then the External job,
which RELION points at the Refine3D job it just created. Checked: both jobs finished in
``default_pipeline.star``, locband's outputs are registered with RELION 5's node labels, the External
job got the refinement's half-map and the Scheme's mask, and every file came from RELION 5.0.1
(``# version 50001`` STAR files, the optimiser's version line). RELION 3.1 has Schedules instead,
read by ``relion_scheduler`` in ``test_relion_pipeliner.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import relion_phantom
import relion_runner
import starfile
from relion_installs import INSTALLS, RelionInstall, require, star_version

from locband.io.mrc import read_map
from locband.io.relion_pipeline import ProcessStatus, read_pipeline

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
WRAPPER = REPO / "wrappers" / "locband-relion-external"
SCHEME = REPO / "templates" / "relion" / "scheme_5.0" / "Schemes" / "locband_refine"
#: The auto-refine converges in about 3 min on 2 cores (13 iterations); a stuck scheme must fail the test.
TIMEOUT_S = 1500


@pytest.fixture(scope="module")
def relion5() -> RelionInstall:
    return require(INSTALLS["5.0.1"], "relion_schemer")


@pytest.fixture(scope="module")
def dataset(relion5: RelionInstall, tmp_path_factory: pytest.TempPathFactory) -> relion_phantom.Dataset:
    return relion_runner.build_dataset(tmp_path_factory.mktemp("relion5_scheme"), env=relion5.environment())


def set_job_options(job_star: Path, values: dict[str, str]) -> None:
    """Change option values in a job.star (``data_joboptions_values``), as editing it by hand would."""
    text = job_star.read_text()
    for name, value in values.items():
        quoted = f'"{value}"' if " " in value else value
        text, n = re.subn(rf"^\s*{name}\s.*$", f"{name} {quoted}", text, count=1, flags=re.M)
        assert n == 1, f"{job_star} has no option {name}"
    job_star.write_text(text)


def _schemer(relion5: RelionInstall, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = relion5.environment()
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               RELION_MPIRUN="mpirun --oversubscribe",  # 3 ranks on 2 cores; RELION prepends this to _mpi programs
               LOCBAND_PYTHON=sys.executable)  # the External job's wrapper runs locband with this Python
    env.pop("PYTHONPATH", None)
    return subprocess.run(["relion_schemer", "--scheme", "locband_refine", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def test_scheme_runs_refine3d_then_locband(relion5: RelionInstall, dataset: relion_phantom.Dataset,
                                           tmp_path: Path) -> None:
    project = tmp_path
    for name in ("Particles", "Truth"):
        (project / name).symlink_to(dataset.root / name)
    shutil.copy(dataset.particles_star, project / "particles.star")
    shutil.copytree(SCHEME, project / "Schemes" / "locband_refine")
    scheme_dir = project / "Schemes" / "locband_refine"
    # what a user edits in the job.star files: program path, threads, sampling (coarse: a CI-sized refinement)
    set_job_options(scheme_dir / "refine" / "job.star", {
        "nr_threads": "1", "nr_pool": "10", "ini_high": "30", "sampling": "15 degrees",
        "auto_local_sampling": "7.5 degrees", "offset_range": "3", "offset_step": "1.5",
        "ref_correct_greyscale": "Yes", "other_args": "--random_seed 1"})
    set_job_options(scheme_dir / "locband" / "job.star", {"fn_exe": str(WRAPPER), "nr_threads": "1"})
    for var, value in (("particles", "particles.star"), ("reference", "Truth/reference_30A.mrc"),
                       ("mask", "Truth/mask.mrc"), ("diameter", str(dataset.spec.particle_diameter_angstrom))):
        proc = _schemer(relion5, project, "--set_var", var, "--value", value)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    run = _schemer(relion5, project, "--run", "--pipeline_control", "Schemes/locband_refine/", "--verb", "2")
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert "Creating new Job: Refine3D/job001/ from Node: refine" in run.stdout, log[-4000:]
    assert "Creating new Job: External/job002/ from Node: locband" in run.stdout, log[-4000:]

    pipeline_star = project / "default_pipeline.star"
    assert star_version(pipeline_star) == relion5.star_version
    pipeline = read_pipeline(pipeline_star)
    refine, locband = project / "Refine3D" / "job001", project / "External" / "job002"
    assert pipeline.status("Refine3D/job001/") == ProcessStatus.SUCCEEDED, (refine / "run.err").read_text()[-3000:]
    assert pipeline.status("External/job002/") == ProcessStatus.SUCCEEDED, (locband / "run.err").read_text()[-3000:]
    assert {Path(n).name: node.type for n, node in pipeline.outputs("External/job002/").items()} == {
        "filtered.mrc": "DensityMap.mrc", "filtered_half1.mrc": "DensityMap.mrc.halfmap",
        "local_resolution.mrc": "Image3D.mrc.localresmap", "report.pdf": "LogFile.pdf.relion"}
    # RELION replaced the Scheme's job name with the Refine3D job it created, and $$mask with the variable
    assert sorted(n for n, p in pipeline.input_edges if p == "External/job002/") == [
        "Refine3D/job001/run_half1_class001_unfil.mrc", "Truth/mask.mrc"]
    assert (f"{WRAPPER} --o External/job002/ --in_3dref Refine3D/job001/run_half1_class001_unfil.mrc "
            "--in_mask Truth/mask.mrc --criterion 0.143 --noise_threshold 1 --apply_mask no --report yes "
            "--interpretation no --j 1") in (locband / "note.txt").read_text()
    assert not (locband / "denoised.mrc").exists()  # the Scheme shows the switch, off

    # RELION 5.0.1 ran the refinement: the leader's optimiser file and both halves' model files say so
    optimiser = refine / "run_optimiser.star"
    assert re.search(r"^# RELION optimiser; version 5\.0\.1", optimiser.read_text(), flags=re.M)
    last = sorted(refine.glob("run_it*_half2_model.star"))[-1]
    for star in (optimiser, last, last.with_name(last.name.replace("half2", "half1"))):
        assert star_version(star) == relion5.star_version, star
    assert (refine / "RELION_JOB_EXIT_SUCCESS").is_file() and (locband / "RELION_JOB_EXIT_SUCCESS").is_file()
    box = dataset.spec.box
    for name in ("filtered.mrc", "filtered_half1.mrc", "filtered_half2.mrc", "local_resolution.mrc"):
        assert read_map(locband / name, what=name).data.shape == (box, box, box), name

    # the Scheme records which job each node became
    jobs = starfile.read(scheme_dir / "scheme.star", always_dict=True)["scheme_jobs"]
    current = dict(zip(jobs["rlnSchemeJobNameOriginal"], jobs["rlnSchemeJobName"], strict=True))
    assert current == {"refine": "Refine3D/job001/", "locband": "External/job002/"}
    assert not os.path.exists(project / ".relion_lock_scheme_locband_refine")
