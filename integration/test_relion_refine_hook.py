"""relion_refine_mpi with split halves and an external reconstruction program (the locband hook).

Every RELION test runs once with RELION 3.1 and once with RELION 5.0.1 (``relion_installs.py``).
What is run: ``mpirun -n 3 relion_refine_mpi --split_random_halves --external_reconstruct`` on the
synthetic data set of ``relion_phantom.py`` (400 particles, 40 px, a rigid body and a flexible domain
in three conformations, CTF, noise), 2 fixed iterations at 15 degrees, which takes about 20 s on
2 cores; and once ``--auto_refine`` to convergence (about 2 minutes), which also makes RELION's
final joined call of the hook.

What is checked, for every call RELION makes (each iteration, each half, and the joined final call):
the hook's input STAR and its result map exist, the map has the right box and finite values, the
reference RELION writes next equals the hook's map inside the particle radius (so RELION used it),
and with the locband hook ``locband_extrec.jsonl`` has exactly one line naming that call and
run.out one ``locband: itNNN`` line per call. Which RELION ran is checked in the files themselves:
the hook STAR files (written by the follower ranks) and the optimiser STAR file (the leader) carry
that version's ``# version`` line, the optimiser STAR file its version string, and with RELION 5 the
hook takes the pixel size from ``rlnPixelSize`` of its STAR file. A run
with RELION's own ``relion_external_reconstruct`` as the hook checks the harness itself, and a
hook that fails must make relion_refine_mpi stop with a non-zero exit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import relion_phantom
import relion_runner
import relion_scoring
from relion_installs import RelionInstall, star_version

from locband.io.mrc import read_map

pytestmark = pytest.mark.integration

#: A fixed-iteration run takes ~20 s on 2 cores; a stuck MPI job must not hang CI.
FIXED_RUN_TIMEOUT_S = 600
#: The tiny auto-refine converges in ~2.5 min on 2 cores (11-14 iterations of ~10 s).
AUTO_RUN_TIMEOUT_S = 1200


def _hook_roots(*, iterations: int) -> list[str]:
    return [f"run_it{it:03d}_half{half}_class001" for it in range(1, iterations + 1) for half in (1, 2)]


def _ball(box: int, radius: float) -> np.ndarray:
    axis = np.arange(box) - box // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.sqrt(x ** 2 + y ** 2 + z ** 2) < radius


def _check_finished(run: relion_runner.RefineRun, relion: RelionInstall) -> None:
    assert run.returncode == 0, f"relion_refine_mpi exit {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert "ERROR" not in run.stderr, run.stderr[-3000:]
    # The leader wrote the optimiser files: "# RELION optimiser; version 5.0.1-..." and that version's STAR format.
    optimiser = sorted(run.out_dir.glob("run_it*_optimiser.star"))[-1]
    assert re.search(rf"^# RELION optimiser; version {re.escape(relion.version_prefix)}", optimiser.read_text(),
                     flags=re.M), f"{optimiser} was not written by RELION {relion.name}"
    assert star_version(optimiser) == relion.star_version, optimiser


def _check_hook_calls(run: relion_runner.RefineRun, dataset: relion_phantom.Dataset, roots: list[str],
                      *, hook_name: str, relion: RelionInstall) -> None:
    """Every call's inputs and map exist, RELION logged the call and kept the hook's map as the reference."""
    box = dataset.spec.box
    radius_px = dataset.spec.particle_diameter_angstrom / (2 * dataset.spec.pixel_size_angstrom)
    # RELION's solvent flattening leaves the map untouched inside the particle radius and applies a
    # soft edge outside it; one pixel less keeps the comparison clear of the edge.
    inside = _ball(box, radius_px - 1)
    # Only rank 1 (half 1, and the joined final call) prints "Making system call" to stdout.
    calls = re.findall(r"Making system call for external reconstruction: (\S+) (\S+)", run.stdout)
    logged = sorted(Path(star).name for _, star in calls)
    assert logged == sorted(f"{r}_external_reconstruct.star" for r in roots if "_half2_" not in r), logged
    assert all(Path(program).name == hook_name for program, _ in calls), calls
    for root in roots:
        star = run.out_dir / f"{root}_external_reconstruct.star"
        # written by the rank that made the call (1 = half 1 and the final call, 2 = half 2)
        assert star_version(star) == relion.star_version, f"{star} was not written by RELION {relion.name}"
        hooked = read_map(run.out_dir / f"{root}_external_reconstruct.mrc", what=root).data
        assert hooked.shape == (box, box, box), root
        assert np.isfinite(hooked).all() and hooked.std() > 0, root
        # The joined final call (no "_half") becomes run_class001.mrc.
        reference_name = f"{root}.mrc" if "_half" in root else "run_class001.mrc"
        reference = read_map(run.out_dir / reference_name, what=reference_name).data
        # Both are float32 copies of the same values (RELION reads, flattens outside the radius and
        # writes again): 1e-5 of the map's spread allows float32 rounding and nothing else.
        np.testing.assert_allclose(reference[inside], hooked[inside], rtol=0, atol=1e-5 * float(hooked.std()),
                                   err_msg=f"{root}: RELION's next reference is not the hook's map")


def _check_locband_log(run: relion_runner.RefineRun, roots: list[str], *, relion: RelionInstall,
                       pixel_size_angstrom: float) -> None:
    """``locband_extrec.jsonl`` has exactly one JSON line per call whose ``star`` is that call's STAR file."""
    log = run.out_dir / "locband_extrec.jsonl"
    assert log.is_file(), f"no {log}"
    # The hook also prints one line per call to stdout, which RELION (both ranks) passes on to run.out.
    # The two halves print at the same moment and mpirun's output forwarding can join their lines
    # (seen: "locband: it003 half1: ...locband: it003 half2: ..."), so count occurrences, not line starts.
    printed = re.findall(r"locband: it\d{3}\b", run.stdout)
    assert len(printed) == len(roots), f"{len(printed)} 'locband: itNNN' lines in stdout for {len(roots)} hook calls"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert len(records) == len(roots), f"{len(records)} log lines for {len(roots)} hook calls"
    for root in roots:
        star = f"{root}_external_reconstruct.star"
        matching = [r for r in records if Path(str(r.get("star", ""))).name == star]
        assert len(matching) == 1, f"{len(matching)} log lines name {star}"
        assert matching[0]["pixel_size_angstrom"] == pytest.approx(pixel_size_angstrom), matching[0]
        if relion.major >= 4:  # 4.0 and later pass rlnPixelSize in the hook STAR file; 3.1 does not
            assert matching[0]["pixel_size_source"] == "rlnPixelSize of the hook STAR file", matching[0]


def test_harness_with_relion_own_reconstruction_as_hook(relion: RelionInstall,
                                                       relion_dataset: relion_phantom.Dataset) -> None:
    """Control: the harness and its checks pass with relion_external_reconstruct as the hook."""
    run = relion_runner.run_refine(relion_dataset, "control", hook_command="relion_external_reconstruct",
                                 timeout_seconds=FIXED_RUN_TIMEOUT_S, iterations=2, env=relion.environment())
    _check_finished(run, relion)
    _check_hook_calls(run, relion_dataset, _hook_roots(iterations=2),
                      hook_name="relion_external_reconstruct", relion=relion)
    assert (run.out_dir / "run_it002_data.star").is_file()


def test_refine_with_locband_hook(relion: RelionInstall, relion_dataset: relion_phantom.Dataset,
                                  locband_hook: Path) -> None:
    """Two fixed iterations: every reference of every iteration and half came from locband."""
    run = relion_runner.run_refine(relion_dataset, "locband_fixed", hook_command=str(locband_hook),
                                 timeout_seconds=FIXED_RUN_TIMEOUT_S, iterations=2, env=relion.environment())
    _check_finished(run, relion)
    roots = _hook_roots(iterations=2)
    _check_hook_calls(run, relion_dataset, roots, hook_name=locband_hook.name, relion=relion)
    _check_locband_log(run, roots, relion=relion, pixel_size_angstrom=relion_dataset.spec.pixel_size_angstrom)
    for suffix in ("data.star", "optimiser.star", "half1_model.star", "half2_model.star"):
        assert (run.out_dir / f"run_it002_{suffix}").is_file(), suffix


def test_auto_refine_with_locband_hook_finishes(relion: RelionInstall, relion_dataset: relion_phantom.Dataset,
                                                locband_hook: Path) -> None:
    """Auto-refine to convergence: the final joined call also goes through locband; the final files exist."""
    run = relion_runner.run_refine(relion_dataset, "locband_auto", hook_command=str(locband_hook),
                                 timeout_seconds=AUTO_RUN_TIMEOUT_S, iterations=None, env=relion.environment())
    _check_finished(run, relion)
    joined = sorted(p.name for p in run.out_dir.glob("run_it*_class001_external_reconstruct.star")
                    if "_half" not in p.name)
    assert len(joined) == 1, f"expected one joined final call, found {joined}"
    last = int(joined[0][len("run_it"):len("run_it") + 3])
    # Iterations 1..last-1 have both half calls; the last (joined) iteration has one call, made by rank 1.
    roots = _hook_roots(iterations=last - 1) + [f"run_it{last:03d}_class001"]
    _check_hook_calls(run, relion_dataset, roots, hook_name=locband_hook.name, relion=relion)
    _check_locband_log(run, roots, relion=relion, pixel_size_angstrom=relion_dataset.spec.pixel_size_angstrom)
    box = relion_dataset.spec.box
    for name in ("run_class001.mrc", "run_half1_class001_unfil.mrc", "run_half2_class001_unfil.mrc"):
        assert read_map(run.out_dir / name, what=name).data.shape == (box, box, box), name
    for name in ("run_model.star", "run_data.star"):
        assert (run.out_dir / name).is_file(), name


def test_failing_hook_stops_relion(relion: RelionInstall, relion_dataset: relion_phantom.Dataset,
                                   tmp_path: Path) -> None:
    """A hook that exits non-zero makes relion_refine_mpi stop with a non-zero exit and say why."""
    hook = tmp_path / "failing-hook"
    hook.write_text("#!/bin/sh\necho \"failing-hook: deliberate failure on $1\" >&2\nexit 3\n")
    hook.chmod(0o755)
    run = relion_runner.run_refine(relion_dataset, "failing_hook", hook_command=str(hook),
                                 timeout_seconds=FIXED_RUN_TIMEOUT_S, iterations=1, env=relion.environment())
    assert run.returncode != 0
    assert "failing-hook: deliberate failure on" in run.stderr
    assert "there was something wrong with system call" in run.stdout + run.stderr
    assert not (run.out_dir / "run_it001_half1_class001.mrc").exists()


# --- the harness's own known answers (no RELION needed) ---------------------------------------


def test_euler_matrices_are_rotations_with_known_angles() -> None:
    rng = np.random.default_rng(7)
    angles = relion_phantom.uniform_orientations(50, rng)
    r = relion_scoring.euler_to_matrix(angles)
    # float64 products of unit-length rows: orthonormal to rounding (~1e-15); 1e-12 leaves margin.
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", r, r), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    np.testing.assert_allclose(relion_scoring.euler_to_matrix([0.0, 0.0, 0.0])[0], np.eye(3), atol=1e-15)


@pytest.mark.parametrize(("fit", "expected_deg"), [
    ([10.0, 0.0, 0.0], 10.0),     # rot alone: a rotation about z
    ([0.0, 25.0, 0.0], 25.0),     # tilt alone: about y
    ([0.0, 0.0, 200.0], 160.0),   # psi alone, the short way round
    ([30.0, 0.0, -30.0], 0.0),    # tilt 0: rot and psi turn about the same axis and cancel
    ([180.0, 0.0, 180.0], 0.0),   # rot + psi = 360 at tilt 0: the identity written another way
])
def test_angular_error_known_answers(fit: list[float], expected_deg: float) -> None:
    import pandas as pd

    cols = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    truth = pd.DataFrame([["1@a.mrcs", 0.0, 0.0, 0.0]], columns=["rlnImageName", *cols])
    refined = pd.DataFrame([["1@a.mrcs", *fit]], columns=["rlnImageName", *cols])
    # arccos near 0 loses precision (~1e-6 deg for float64 traces); 1e-5 deg is far below any real error.
    np.testing.assert_allclose(relion_scoring.angular_errors_degrees(refined, truth), [expected_deg], atol=1e-5)


def test_angular_error_rejects_unmatched_particles() -> None:
    import pandas as pd

    cols = ["rlnImageName", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    truth = pd.DataFrame([["1@a.mrcs", 0, 0, 0], ["2@a.mrcs", 0, 0, 0]], columns=cols)
    refined = pd.DataFrame([["1@a.mrcs", 0, 0, 0]], columns=cols)
    with pytest.raises(ValueError, match="1 of the 2 true particles"):
        relion_scoring.angular_errors_degrees(refined, truth)


def test_dataset_mixes_conformations_with_known_orientations(relion_dataset: relion_phantom.Dataset) -> None:
    import starfile

    spec = relion_dataset.spec
    particles = starfile.read(relion_dataset.particles_star, always_dict=True)
    truth = starfile.read(relion_dataset.truth_star, always_dict=True)["particles"]
    assert set(particles) == {"optics", "particles"}  # RELION 3.1 format
    assert len(particles["particles"]) == len(truth) == spec.n_particles
    assert not {"rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"} & set(particles["particles"].columns)
    assert sorted(truth["rlnClassNumber"].unique()) == list(range(1, spec.n_conformations + 1))
    # The true map is the mean of the conformations: the flexible domain really moves between them.
    confs = [read_map(relion_dataset.truth_map.parent / f"conformation{c}.mrc").data
             for c in range(1, spec.n_conformations + 1)]
    mean = read_map(relion_dataset.truth_map).data
    # float32 sums of a few maps: relative rounding ~1e-7; 1e-5 of the peak leaves margin.
    np.testing.assert_allclose(np.mean(confs, axis=0), mean, atol=1e-5 * float(mean.max()))
    assert np.abs(confs[0] - confs[-1]).max() > 0.2 * mean.max()
