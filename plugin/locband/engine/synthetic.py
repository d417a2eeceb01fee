"""Synthetic half-map pairs with a known truth (tests, ``locband demo`` and benchmarks).

A particle is a cloud of Gaussian "atoms" inside a sphere. One part is rigid (sharp); the other
is flexible (blurred by a Gaussian, as averaging over conformations does), or a low-resolution
shell surrounds the core (a detergent micelle), or one domain is present in only a fraction of
the particles (partial occupancy: its density is that fraction of the rest). Each half-map is
the truth plus independent Gaussian noise, white or coloured (noise power rising with
frequency, as in CTF-corrected reconstructions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from locband.engine import _fft
from locband.engine._grid import frequency_squared

__all__ = ["SyntheticPair", "synthetic_pair", "gaussian_blur", "KINDS"]

KINDS = ("rigid_flexible", "uniform", "micelle", "partial", "noise")


@dataclass(frozen=True)
class SyntheticPair:
    """Two noisy halves of a known truth.

    Attributes
    ----------
    truth, half1, half2 : (nz, ny, nx) ndarray of float32
    regions : dict of str to (nz, ny, nx) ndarray of bool
        Named regions of the particle (e.g. "rigid", "flexible"), each where that part has density.
    mask : (nz, ny, nx) ndarray of float32
        Soft mask around the whole particle.
    blur_sigma_voxels : dict of str to float
        Gaussian blur applied to each region's atoms (beyond the atoms' own width).
    noise_std : float
        Standard deviation of each half's noise.
    """

    truth: npt.NDArray[np.float32]
    half1: npt.NDArray[np.float32]
    half2: npt.NDArray[np.float32]
    regions: dict[str, npt.NDArray[np.bool_]]
    mask: npt.NDArray[np.float32]
    blur_sigma_voxels: dict[str, float]
    noise_std: float


def gaussian_blur(vol: npt.NDArray[np.float32], sigma: float) -> npt.NDArray[np.float32]:
    """Periodic Gaussian blur of ``sigma`` voxels (in Fourier space)."""
    if sigma <= 0:
        return vol.astype(np.float32, copy=True)
    s2 = frequency_squared(vol.shape, tuple(1.0 / n for n in vol.shape))
    g = np.exp(np.float32(-2 * np.pi ** 2 * sigma ** 2) * s2)
    return _fft.irfftn(_fft.rfftn(vol, backend="scipy") * g, vol.shape, backend="scipy")


def _atoms(shape: tuple[int, ...], inside: npt.NDArray[np.bool_], n_atoms: int,
           rng: np.random.Generator) -> npt.NDArray[np.float32]:
    pts = np.argwhere(inside)
    pick = pts[rng.choice(len(pts), size=min(n_atoms, len(pts)), replace=False)]
    vol = np.zeros(shape, np.float32)
    np.add.at(vol, tuple(pick.T), 1.0)
    return vol


def _soft_mask(region: npt.NDArray[np.bool_], width: float) -> npt.NDArray[np.float32]:
    m = gaussian_blur(region.astype(np.float32), width)
    return np.asarray(np.clip(m * 2.0, 0.0, 1.0), dtype=np.float32)


def _colour(noise: npt.NDArray[np.float32], slope: float, std: float) -> npt.NDArray[np.float32]:
    """Noise whose power rises as ``1 + slope (s/0.5)^2``, rescaled to standard deviation ``std``."""
    s2 = frequency_squared(noise.shape, tuple(1.0 / n for n in noise.shape))
    amp = np.sqrt(1.0 + np.float32(slope) * s2 / np.float32(0.25))
    out = _fft.irfftn(_fft.rfftn(noise, backend="scipy") * amp, noise.shape, backend="scipy")
    out *= np.float32(std / max(float(out.std()), 1e-30))
    return out


def synthetic_pair(shape: tuple[int, int, int] = (64, 64, 64), *, kind: str = "rigid_flexible",
                   noise_std: float = 1.0, atom_sigma: float = 1.0, flexible_sigma: float = 2.5,
                   atom_density: float = 0.02, rigid_fraction: float = 0.5, occupancy: float = 0.4,
                   noise_slope: float = 0.0, seed: int = 0) -> SyntheticPair:
    """Make a synthetic half-map pair with a known truth.

    Parameters
    ----------
    shape : tuple of int
        Box ``(nz, ny, nx)``.
    kind : {"rigid_flexible", "uniform", "micelle", "partial", "noise"}
        ``rigid_flexible``: one half of the particle blurred by ``flexible_sigma``;
        ``uniform``: all sharp; ``micelle``: a sharp core in a shell blurred by
        ``2 * flexible_sigma``; ``partial``: as ``rigid_flexible`` but the second domain is
        sharp and its density is ``occupancy`` times that of the first (a domain present in
        that fraction of the particles); ``noise``: no particle (truth 0).
    noise_std : float
        Noise standard deviation of each half, relative to the peak of one atom (1).
    atom_sigma : float
        Width of every atom in voxels.
    flexible_sigma : float
        Extra blur of the flexible region in voxels.
    atom_density : float
        Atoms per voxel inside the particle.
    rigid_fraction : float
        ``rigid_flexible`` and ``partial``: share of the particle's width (along x) of the
        first (rigid, fully occupied) domain.
    occupancy : float
        ``partial`` only: density of the second domain relative to the first, in (0, 1].
    noise_slope : float
        0 for white noise; otherwise the noise amplitude at frequency ``s`` (cycles/voxel) is
        scaled by ``sqrt(1 + noise_slope * (s / 0.5)**2)`` and the whole rescaled to the
        standard deviation ``noise_std`` (noise power ``1 + noise_slope`` times higher at
        Nyquist than at 0).
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    SyntheticPair
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    box: tuple[int, ...] = tuple(int(n) for n in shape)
    grids = np.meshgrid(*[np.arange(n) - n / 2 for n in box], indexing="ij")
    rel = [g / (n / 2) for g, n in zip(grids, box, strict=True)]  # -1 .. 1 across the box
    r = np.sqrt(sum(x ** 2 for x in rel))
    regions: dict[str, npt.NDArray[np.bool_]] = {}
    blur: dict[str, float] = {}
    truth = np.zeros(box, np.float32)
    if kind != "noise":
        sphere = r < 0.6
        scale = {"rigid": 1.0}
        if kind in ("rigid_flexible", "partial"):
            cut = np.float32(0.6 * (2 * rigid_fraction - 1))  # the sphere spans -0.6..0.6 along x
            second = "flexible" if kind == "rigid_flexible" else "partial"
            parts = {"rigid": sphere & (rel[2] < cut), second: sphere & (rel[2] >= cut)}
            blur = {"rigid": 0.0, second: flexible_sigma if kind == "rigid_flexible" else 0.0}
            if kind == "partial":
                if not 0.0 < occupancy <= 1.0:
                    raise ValueError(f"occupancy must be in (0, 1], got {occupancy!r}")
                scale["partial"] = float(occupancy)
        elif kind == "uniform":
            parts = {"rigid": sphere}
            blur = {"rigid": 0.0}
        else:  # micelle: core inside a blurred shell
            parts = {"rigid": r < 0.35, "micelle": (r >= 0.42) & (r < 0.6)}
            blur = {"rigid": 0.0, "micelle": 2 * flexible_sigma}
        for name, inside in parts.items():
            n_atoms = int(atom_density * inside.sum())
            density = gaussian_blur(_atoms(box, inside, n_atoms, rng), float(np.hypot(atom_sigma, blur[name])))
            # an isolated sharp atom peaks at 1 (times the region's occupancy)
            density *= np.float32((2 * np.pi) ** 1.5 * atom_sigma ** 3 * scale.get(name, 1.0))
            truth += density
            regions[name] = inside
    noise = [rng.standard_normal(box).astype(np.float32) * np.float32(noise_std) for _ in range(2)]
    if noise_slope:
        noise = [_colour(n, noise_slope, noise_std) for n in noise]
    support = r < 0.6 if kind != "noise" else np.ones(box, bool)
    return SyntheticPair(truth=truth, half1=truth + noise[0], half2=truth + noise[1], regions=regions,
                         mask=_soft_mask(support, 1.5), blur_sigma_voxels=blur, noise_std=float(noise_std))
