"""Running RELION on the synthetic data set: projecting the particles and refining them.

Used by ``integration/test_relion_refine_hook.py`` (tiny, CI), ``integration/test_relion_scheme.py``
and ``integration/benchmarks/bench_relion_refine.py`` (larger, to convergence); the particle
itself is ``relion_phantom``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import starfile
from relion_phantom import Dataset, DatasetSpec, _optics_table, _particle_table, write_truth

__all__ = ["Dataset", "DatasetSpec", "RefineRun", "build_dataset", "existing_dataset", "refine_argv", "run_refine",
           "hook_environment", "relion_missing", "REPO_ROOT", "LOCBAND_HOOK", "PLUGIN_DIR"]


REPO_ROOT = Path(__file__).resolve().parents[1]


PLUGIN_DIR = REPO_ROOT / "plugin"


#: The locband hook (written in the relion-hook branch): RELION calls it with one STAR path.
LOCBAND_HOOK = REPO_ROOT / "wrappers" / "locband-relion-reconstruct"


RELION_PROGRAMS = ("relion_project", "relion_refine_mpi", "relion_external_reconstruct", "mpirun")


def relion_missing() -> list[str]:
    """The RELION / MPI programs this module needs that are not on PATH."""
    return [p for p in RELION_PROGRAMS if shutil.which(p) is None]


def _run(argv: Sequence[str], *, cwd: Path, what: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def build_dataset(root: str | os.PathLike[str], spec: DatasetSpec | None = None, *,
                  env: dict[str, str] | None = None) -> Dataset:
    """Simulate the volumes (:func:`write_truth`) and project the particles with ``relion_project``.

    Parameters
    ----------
    root : path-like
        Project directory (created). Maps go to ``root/Truth``, images to ``root/Particles``.
    spec : DatasetSpec, optional
        What to simulate; the defaults make the CI data set (400 particles, 40 px, 3 Å/px).
    env : dict, optional
        Environment of ``relion_project`` (its ``PATH`` picks the RELION installation); default: this process's.

    Returns
    -------
    Dataset

    Raises
    ------
    RuntimeError
        If ``relion_project`` fails.
    """
    spec = spec or DatasetSpec()
    root = Path(root).resolve()
    (root / "Particles").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed + 1)
    conformation_maps = write_truth(root, spec)
    psize = spec.pixel_size_angstrom
    optics = _optics_table(spec)
    particles = _particle_table(spec, rng)
    projected = []
    for c, conf_map in enumerate(conformation_maps, start=1):
        rows = particles[particles["rlnClassNumber"] == c]
        if rows.empty:
            continue
        starfile.write({"optics": optics, "particles": rows}, root / "Particles" / f"conf{c}_in.star",
                       overwrite=True)
        _run(["relion_project", "--i", str(conf_map), "--o", f"Particles/conf{c}", "--ang",
              f"Particles/conf{c}_in.star", "--angpix", str(psize), "--ctf", "--add_noise",
              "--white_noise", "1"], cwd=root, what="relion_project", env=env)
        out = starfile.read(root / "Particles" / f"conf{c}.star", always_dict=True)["particles"]
        out["rlnClassNumber"] = c  # relion_project may drop unknown columns: set it again
        projected.append(out)
    truth = pd.concat(projected, ignore_index=True)
    starfile.write({"optics": optics, "particles": truth}, root / "particles_truth.star", overwrite=True)
    keep = ["rlnImageName", "rlnOriginXAngst", "rlnOriginYAngst", "rlnDefocusU", "rlnDefocusV",
            "rlnDefocusAngle", "rlnOpticsGroup"]
    starfile.write({"optics": optics, "particles": truth[keep]}, root / "particles.star", overwrite=True)
    return existing_dataset(root, spec)


def existing_dataset(root: str | os.PathLike[str], spec: DatasetSpec) -> Dataset:
    """The :class:`Dataset` that :func:`build_dataset` wrote under ``root`` with ``spec`` (nothing is checked)."""
    root = Path(root).resolve()
    truth = root / "Truth"
    return Dataset(root=root, particles_star=root / "particles.star", truth_star=root / "particles_truth.star",
                   truth_map=truth / "truth.mrc", reference_map=truth / "reference_30A.mrc", mask=truth / "mask.mrc",
                   rigid_mask=truth / "mask_rigid.mrc", flexible_mask=truth / "mask_flexible.mrc", spec=spec)


def refine_argv(dataset: Dataset, out_root: str, *, hook: bool, iterations: int | None = 2,
                healpix_order: int = 1, n_mpi: int = 3, threads: int = 1,
                extra: Sequence[str] = ()) -> list[str]:
    """The ``mpirun ... relion_refine_mpi`` command line.

    Parameters
    ----------
    dataset : Dataset
    out_root : str
        ``--o`` relative to ``dataset.root``, e.g. ``"Refine3D/hook/run"``.
    hook : bool
        Add ``--external_reconstruct`` (the program is named by the environment variable).
    iterations : int or None
        Fixed number of iterations with split halves (``--iter``); None = ``--auto_refine`` to convergence.
    healpix_order : int
        Initial angular sampling (1 = 15 degrees).
    n_mpi : int
        MPI processes (3 = a leader and one follower per half).
    threads : int
        ``--j`` per process.
    extra : sequence of str
        More relion_refine arguments.
    """
    spec = dataset.spec
    argv = ["mpirun", "--oversubscribe", "-n", str(n_mpi),
            "-x", "RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE", "-x", "LOCBAND_PYTHON", "-x", "PATH", "-x", "PYTHONPATH",
            "relion_refine_mpi", "--i", os.path.relpath(dataset.particles_star, dataset.root),
            "--o", out_root, "--ref", os.path.relpath(dataset.reference_map, dataset.root),
            "--ini_high", "30", "--pad", "2", "--ctf", "--particle_diameter", str(spec.particle_diameter_angstrom),
            "--flatten_solvent", "--zero_mask", "--norm", "--scale", "--sym", "C1",
            "--healpix_order", str(healpix_order), "--offset_range", "3", "--offset_step", "1.5",
            "--oversampling", "1", "--split_random_halves", "--random_seed", "1", "--j", str(threads),
            "--dont_combine_weights_via_disc", "--pool", "10"]
    if iterations is None:
        argv += ["--auto_refine", "--low_resol_join_halves", "40",
                 "--auto_local_healpix_order", str(healpix_order + 2)]
    else:
        argv += ["--K", "1", "--iter", str(iterations)]
    if hook:
        argv.append("--external_reconstruct")
    return argv + list(extra)


@dataclass
class RefineRun:
    """A finished relion_refine_mpi run.

    Attributes
    ----------
    returncode : int
    out_dir : Path
        Directory of ``--o``, holding ``run.out`` / ``run.err`` (stdout / stderr).
    seconds : float
        Wall time.
    argv : list of str
    """

    returncode: int
    out_dir: Path
    seconds: float
    argv: list[str] = field(default_factory=list)

    @property
    def stdout(self) -> str:
        return (self.out_dir / "run.out").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return (self.out_dir / "run.err").read_text(errors="replace")


def hook_environment(hook_command: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for relion_refine: the hook, this Python and locband first on the paths, MPI as root allowed.

    ``base`` (default ``os.environ``) picks the RELION installation through its ``PATH``.
    """
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(PLUGIN_DIR), env.get("PYTHONPATH", "")] if p)
    env["LOCBAND_PYTHON"] = sys.executable  # the interpreter the locband wrapper runs (it can import locband)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    if hook_command is not None:
        env["RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE"] = hook_command
    else:
        env.pop("RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE", None)
    return env


def run_refine(dataset: Dataset, name: str, *, hook_command: str | None, timeout_seconds: float,
               iterations: int | None = 2, threads: int = 1, extra: Sequence[str] = (),
               env: dict[str, str] | None = None) -> RefineRun:
    """Run relion_refine_mpi into ``Refine3D/<name>/run`` under ``dataset.root``.

    Parameters
    ----------
    dataset : Dataset
    name : str
        Job directory name (must not exist yet).
    hook_command : str or None
        ``RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE`` and ``--external_reconstruct``; None = RELION's own
        reconstruction.
    timeout_seconds : float
        Kill the run after this long (raises ``subprocess.TimeoutExpired``).
    iterations, threads, extra
        As in :func:`refine_argv`.
    env : dict, optional
        Base environment (its ``PATH`` picks the RELION installation), see :func:`hook_environment`.
    """
    out_dir = dataset.root / "Refine3D" / name
    out_dir.mkdir(parents=True)
    argv = refine_argv(dataset, f"Refine3D/{name}/run", hook=hook_command is not None, iterations=iterations,
                       threads=threads, extra=extra)
    start = time.perf_counter()
    with open(out_dir / "run.out", "w") as out, open(out_dir / "run.err", "w") as err:
        proc = subprocess.run(argv, cwd=dataset.root, env=hook_environment(hook_command, env), stdout=out,
                              stderr=err, timeout=timeout_seconds, check=False)
    return RefineRun(returncode=proc.returncode, out_dir=out_dir, seconds=time.perf_counter() - start, argv=argv)
