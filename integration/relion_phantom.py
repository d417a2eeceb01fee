"""The synthetic particle of the RELION tests: structure, conformations, orientations, truth maps.

The particle is a cloud of Gaussian "atoms": a rigid body (an ellipsoid) and a flexible domain
(a sphere on an arm) that swings about a hinge. Each conformation is a separate volume; the
known answer is the mean of the conformations (what a consensus refinement can at best recover)
and every particle's true orientation. ``relion_runner.build_dataset`` projects the particles
with RELION; ``relion_scoring`` scores a refinement against the truth.

Conventions: volumes are ``(nz, ny, nx)`` float32, atom coordinates are ``(x, y, z)`` voxels
from the box centre ``n // 2`` (RELION's origin). SNR is the variance of the CTF-free projection
of the mean volume over the box divided by the noise variance (noise std 1, so the particles
come out close to RELION's normalisation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from locband.engine.synthetic import gaussian_blur
from locband.engine.units import angstrom_to_cycles
from locband.io.mrc import write_map

__all__ = ["DatasetSpec", "Dataset", "write_truth", "uniform_orientations"]


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
