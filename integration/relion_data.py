"""A small synthetic single-particle data set for RELION, and helpers to refine it and score the result.

Used by ``integration/test_relion_refine_hook.py`` (tiny, CI) and
``integration/benchmarks/bench_relion_refine.py`` (larger, to convergence).

The particle is a cloud of Gaussian "atoms": a rigid body (an ellipsoid) and a flexible domain
(a sphere on an arm) that swings about a hinge. Each conformation is a separate volume; particles
of every conformation are projected by ``relion_project`` with CTF and white noise at random,
known orientations and mixed into one data set, so that the flexible domain is truly
heterogeneous in the images. The known answer is the mean of the conformations (what a
consensus refinement can at best recover) and every particle's true orientation.

Conventions: volumes are ``(nz, ny, nx)`` float32, atom coordinates are ``(x, y, z)`` voxels
from the box centre ``n // 2`` (RELION's origin). SNR is the variance of the CTF-free projection
of the mean volume over the box divided by the noise variance (noise std 1, so the particles
come out close to RELION's normalisation).
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
import numpy.typing as npt
import pandas as pd
import starfile

from locband.engine.fsc import fsc
from locband.engine.synthetic import gaussian_blur
from locband.engine.units import angstrom_to_cycles, cycles_to_angstrom
from locband.io.mrc import read_map, write_map

__all__ = ["DatasetSpec", "Dataset", "RefineRun", "build_dataset", "write_truth", "existing_dataset",
           "refine_argv", "run_refine", "relion_missing", "euler_to_matrix", "angular_errors_degrees",
           "fsc_against_truth", "uniform_orientations", "REPO_ROOT", "LOCBAND_HOOK", "PLUGIN_DIR"]

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO_ROOT / "plugin"
#: The locband hook (written in the relion-hook branch): RELION calls it with one STAR path.
LOCBAND_HOOK = REPO_ROOT / "wrappers" / "locband-relion-reconstruct"
RELION_PROGRAMS = ("relion_project", "relion_refine_mpi", "relion_external_reconstruct", "mpirun")


def relion_missing() -> list[str]:
    """The RELION / MPI programs this module needs that are not on PATH."""
    return [p for p in RELION_PROGRAMS if shutil.which(p) is None]


@dataclass(frozen=True)
class DatasetSpec:
    """What to simulate.

    Attributes
    ----------
    box : int
        Box size in pixels (cubic volumes, square images).
    pixel_size_angstrom : float
        Pixel size.
    n_particles : int
        Number of particle images (all conformations together).
    n_conformations : int
        Number of positions of the flexible domain, evenly spaced over ``±hinge_degrees``.
    hinge_degrees : float
        Largest swing of the flexible domain about its hinge.
    snr : float
        Signal-to-noise ratio of the images (see module docstring).
    defocus_angstrom : tuple of float
        Range of the (uniformly drawn) mean defocus.
    atom_sigma_voxels : float
        Width of every atom.
    atoms_per_voxel : float
        Atom density inside the particle.
    seed : int
        Seed of ``numpy.random.default_rng`` (structure, orientations, defocus; RELION adds its own noise).
    """

    box: int = 40
    pixel_size_angstrom: float = 3.0
    n_particles: int = 400
    n_conformations: int = 3
    hinge_degrees: float = 20.0
    snr: float = 0.1
    defocus_angstrom: tuple[float, float] = (8000.0, 20000.0)
    atom_sigma_voxels: float = 1.0
    atoms_per_voxel: float = 0.03
    seed: int = 0

    @property
    def particle_diameter_angstrom(self) -> float:
        """Mask diameter for relion_refine: 80 % of the box (the particle spans about 65 %)."""
        return round(0.8 * self.box * self.pixel_size_angstrom)


@dataclass(frozen=True)
class Dataset:
    """Files of a built data set (paths are absolute; image names in the STARs are relative to ``root``).

    Attributes
    ----------
    root : Path
        Project directory: run relion_refine from here.
    particles_star : Path
        Particles for relion_refine (3.1 format, optics table, CTF, no orientations).
    truth_star : Path
        The same particles with their true ``rlnAngleRot/Tilt/Psi`` and ``rlnClassNumber`` = conformation.
    truth_map : Path
        Mean of the conformations, the consensus answer.
    reference_map : Path
        ``truth_map`` low-passed to 30 Å: the initial reference.
    mask : Path
        Soft mask around the particle (for FSC against the truth).
    rigid_mask, flexible_mask : Path
        Soft masks of the rigid body and of the space the flexible domain sweeps.
    spec : DatasetSpec
    """

    root: Path
    particles_star: Path
    truth_star: Path
    truth_map: Path
    reference_map: Path
    mask: Path
    rigid_mask: Path
    flexible_mask: Path
    spec: DatasetSpec


def _ellipsoid_points(rng: np.random.Generator, n: int, semi_axes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    radius = rng.uniform(0.0, 1.0, size=(n, 1)) ** (1.0 / 3.0)
    return u * radius * np.asarray(semi_axes, dtype=np.float64)


def _atom_model(spec: DatasetSpec) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Atom coordinates ``(x, y, z)`` of the rigid body and flexible domain, and the hinge point."""
    rng = np.random.default_rng(spec.seed)
    n = spec.box
    rigid_axes = np.array([0.22, 0.17, 0.14]) * n
    rigid_centre = np.array([-0.08, 0.02, 0.0]) * n
    flex_radius = 0.11 * n
    hinge = rigid_centre + np.array([rigid_axes[0] * 0.9, 0.0, 0.0])
    flex_centre = hinge + np.array([flex_radius * 0.8, 0.06 * n, 0.0])
    n_rigid = int(spec.atoms_per_voxel * 4 / 3 * np.pi * np.prod(rigid_axes))
    n_flex = int(spec.atoms_per_voxel * 4 / 3 * np.pi * flex_radius ** 3)
    rigid = rigid_centre + _ellipsoid_points(rng, n_rigid, rigid_axes)
    flexible = flex_centre + _ellipsoid_points(rng, n_flex, [flex_radius] * 3)
    return rigid, flexible, hinge


def _swing(points: npt.NDArray[np.float64], hinge: npt.NDArray[np.float64],
           degrees: float) -> npt.NDArray[np.float64]:
    """Rotate points about the z axis through ``hinge``."""
    a = np.radians(degrees)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    return (points - hinge) @ rot.T + hinge


def _render(points: npt.NDArray[np.float64], box: int, sigma: float) -> npt.NDArray[np.float32]:
    """Sum of unit-peak Gaussians at ``points`` on a ``box``-cubed grid."""
    axis = np.arange(box, dtype=np.float32) - box // 2
    vol = np.zeros((box, box, box), np.float32)
    for x, y, z in points:
        gx = np.exp(-((axis - x) ** 2) / (2 * sigma ** 2)).astype(np.float32)
        gy = np.exp(-((axis - y) ** 2) / (2 * sigma ** 2)).astype(np.float32)
        gz = np.exp(-((axis - z) ** 2) / (2 * sigma ** 2)).astype(np.float32)
        vol += gz[:, None, None] * gy[None, :, None] * gx[None, None, :]
    return vol


def _lowpass(vol: npt.NDArray[np.float32], *, resolution_angstrom: float,
             pixel_size_angstrom: float) -> npt.NDArray[np.float32]:
    """Gaussian low-pass whose amplitude is 1/2 at ``resolution_angstrom``."""
    f_half = float(angstrom_to_cycles(resolution_angstrom, pixel_size_angstrom=pixel_size_angstrom))
    sigma = np.sqrt(np.log(2.0) / 2.0) / (np.pi * f_half)  # exp(-2 pi^2 sigma^2 f^2) = 1/2 at f_half
    return gaussian_blur(vol, float(sigma))


def _soft(region: npt.NDArray[np.float32], *, threshold: float, width: float) -> npt.NDArray[np.float32]:
    binary = (region > threshold).astype(np.float32)
    return np.clip(gaussian_blur(binary, width) * 2.0, 0.0, 1.0).astype(np.float32)


def uniform_orientations(n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """``(n, 3)`` RELION Euler angles (rot, tilt, psi) in degrees, uniform over SO(3)."""
    rot = rng.uniform(0.0, 360.0, n)
    tilt = np.degrees(np.arccos(rng.uniform(-1.0, 1.0, n)))
    psi = rng.uniform(0.0, 360.0, n)
    return np.stack([rot, tilt, psi], axis=1)


def _optics_table(spec: DatasetSpec) -> pd.DataFrame:
    return pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                         "rlnAmplitudeContrast": [0.1], "rlnSphericalAberration": [2.7],
                         "rlnVoltage": [300.0], "rlnImagePixelSize": [spec.pixel_size_angstrom],
                         "rlnImageSize": [spec.box], "rlnImageDimensionality": [2]})


def _particle_table(spec: DatasetSpec, rng: np.random.Generator) -> pd.DataFrame:
    n = spec.n_particles
    angles = uniform_orientations(n, rng)
    defocus = rng.uniform(*spec.defocus_angstrom, n)
    astig = rng.uniform(0.0, 300.0, n)
    return pd.DataFrame({
        "rlnAngleRot": angles[:, 0], "rlnAngleTilt": angles[:, 1], "rlnAnglePsi": angles[:, 2],
        "rlnOriginXAngst": 0.0, "rlnOriginYAngst": 0.0,
        "rlnDefocusU": defocus + astig, "rlnDefocusV": defocus - astig,
        "rlnDefocusAngle": rng.uniform(0.0, 180.0, n), "rlnOpticsGroup": 1,
        "rlnClassNumber": rng.integers(0, spec.n_conformations, n) + 1,
    })


def _run(argv: Sequence[str], *, cwd: Path, what: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def write_truth(root: str | os.PathLike[str], spec: DatasetSpec) -> list[Path]:
    """Write the true volumes, the reference and the masks to ``root/Truth`` (deterministic in ``spec``).

    Writes ``truth.mrc`` (mean of the conformations), ``conformation<c>.mrc``, ``reference_30A.mrc``
    and the soft masks ``mask.mrc`` (particle), ``mask_rigid.mrc`` and ``mask_flexible.mrc`` (the
    space the flexible domain sweeps). The masks have a soft edge of about 3 px, wide enough that a
    masked FSC against the truth is not dominated by the mask's own high frequencies.

    Returns
    -------
    list of Path
        The conformation maps, in order.
    """
    root = Path(root).resolve()
    (root / "Truth").mkdir(parents=True, exist_ok=True)
    rigid, flexible, hinge = _atom_model(spec)
    swings = np.linspace(-spec.hinge_degrees, spec.hinge_degrees, spec.n_conformations)
    rigid_vol = _render(rigid, spec.box, spec.atom_sigma_voxels)
    flex_vols = [_render(_swing(flexible, hinge, s), spec.box, spec.atom_sigma_voxels) for s in swings]
    mean = rigid_vol + np.mean(flex_vols, axis=0, dtype=np.float32)
    scale = np.float32(np.sqrt(spec.snr) / mean.sum(axis=0).std())  # projection std = sqrt(snr); noise std 1
    psize = spec.pixel_size_angstrom

    def _write(name: str, data: npt.NDArray[np.float32]) -> Path:
        return write_map(root / "Truth" / name, data, pixel_size_angstrom=psize)

    _write("truth.mrc", mean * scale)
    _write("reference_30A.mrc", _lowpass(mean * scale, resolution_angstrom=30.0, pixel_size_angstrom=psize))
    level = 0.05 * float(mean.max())
    _write("mask.mrc", _soft(gaussian_blur(mean, 1.5), threshold=level, width=3.0))
    _write("mask_rigid.mrc", _soft(gaussian_blur(rigid_vol, 1.5), threshold=level, width=3.0))
    _write("mask_flexible.mrc", _soft(gaussian_blur(np.max(flex_vols, axis=0), 1.5), threshold=level, width=3.0))
    return [_write(f"conformation{c}.mrc", (rigid_vol + vol) * scale) for c, vol in enumerate(flex_vols, start=1)]


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


def euler_to_matrix(angles_degrees: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """RELION's rotation matrices (``Euler_angles2matrix``, ZYZ) of ``(n, 3)`` (rot, tilt, psi) in degrees."""
    a, b, g = np.radians(np.atleast_2d(np.asarray(angles_degrees, dtype=np.float64))).T
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    m = np.empty((a.size, 3, 3))
    m[:, 0] = np.stack([cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb], axis=1)
    m[:, 1] = np.stack([-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb], axis=1)
    m[:, 2] = np.stack([sc, ss, cb], axis=1)
    return m


def angular_errors_degrees(refined: pd.DataFrame, truth: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Geodesic angle between each particle's refined and true orientation, matched by ``rlnImageName``."""
    cols = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    both = refined[["rlnImageName", *cols]].merge(truth[["rlnImageName", *cols]], on="rlnImageName",
                                                  suffixes=("_fit", "_true"))
    if len(both) != len(truth):
        raise ValueError(f"refined data has {len(both)} of the {len(truth)} true particles")
    r_fit = euler_to_matrix(both[[c + "_fit" for c in cols]].to_numpy())
    r_true = euler_to_matrix(both[[c + "_true" for c in cols]].to_numpy())
    trace = np.einsum("nij,nij->n", r_fit, r_true)  # tr(R_fit R_true^T)
    return np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))


def fsc_against_truth(map_path: str | os.PathLike[str], dataset: Dataset, *,
                      mask_path: str | os.PathLike[str] | None) -> dict[str, float]:
    """FSC of a map against the true (mean) volume, masked by ``mask_path`` (None: unmasked): crossings in Å."""
    vol = read_map(map_path, what="refined map").data
    truth = read_map(dataset.truth_map, what="true map").data
    mask = None if mask_path is None else read_map(mask_path, what="mask").data
    curve = fsc(vol, truth, mask=mask)
    psize = dataset.spec.pixel_size_angstrom
    return {f"fsc{t}_angstrom": float(cycles_to_angstrom(curve.crossing(t), pixel_size_angstrom=psize))
            for t in (0.5, 0.143)}
