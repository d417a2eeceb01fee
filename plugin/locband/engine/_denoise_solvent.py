"""The solvent of an interpretation map: its envelope, and the flat solvent outside it (step 6).

Each map's envelope comes from its own raw data (two halves' for the average): the map smoothed
to about 20 Å, where it stands :data:`_ENVELOPE_Z` noise SDs above the solvent level, sized by
the molecular volume when given (:func:`~locband.engine.priors.envelope_from_map`); or the
user's mask. Outside the envelope, widened and softened, each final map is set to its solvent
level.

**Cost.** The envelope's smoothed map is made on a Fourier-cropped grid (8 times cheaper at
20 Å), the widened envelope on a grid subsampled by 2; the flattening runs over slabs of planes,
with no full-size temporaries.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from locband.engine import _fft
from locband.engine._denoise_plan import Plan, Vol, resampled
from locband.engine._grid import crop_indices, frequency_squared
from locband.engine._interp import resample_rows
from locband.engine.priors import EnvelopeSpec, envelope_from_map, solvent_level
from locband.engine.priors import gaussian_smooth as prior_smooth

__all__ = ["find_envelope", "flatten"]

_ENVELOPE_Z = 3.0  # solvent boundary: smoothed map this many noise SDs above the solvent level


def find_envelope(plan: Plan, spectra: tuple[npt.NDArray[np.complex64], ...], noise_variance: float) -> Vol | None:
    """Solvent boundary of one map from its own (raw) spectrum (two for the average).

    None without solvent flattening. The user's mask, when given, is the envelope (times
    the volume-sized envelope when a molecular volume is given).
    """
    par = plan.params
    if not par.solvent_flattening:
        return None
    if plan.mask is not None and par.molecular_volume_voxels is None:
        return plan.mask
    smoothed = _smoothed(plan, spectra)
    if plan.mask is not None:
        smoothed *= plan.mask
    spec_ = EnvelopeSpec(sigma_voxels=float(par.envelope_sigma_voxels or 1.0), noise_sd=math.sqrt(noise_variance),
                         z=_ENVELOPE_Z, volume_voxels=par.molecular_volume_voxels)
    env = envelope_from_map(smoothed, spec_, connectivity=par.connectivity, workers=plan.workers,
                            backend=plan.backend)
    if plan.mask is not None:
        env *= plan.mask
    return env


def _smoothed(plan: Plan, spectra: tuple[npt.NDArray[np.complex64], ...]) -> Vol:
    """The map of ``spectra`` (one, or two for the mean of the halves) after the envelope's smoothing.

    The smoothing passes nothing beyond about ``0.7 / sigma`` cycles/voxel, so the smoothed
    map is made on a Fourier-cropped grid and interpolated back (8 times cheaper at 20 Å).
    """
    sigma = float(plan.params.envelope_sigma_voxels or 1.0)
    small = tuple(min(n, _fft.next_fast_len(max(8, math.ceil(2 * 0.7 / sigma * n)))) for n in plan.shape)
    idx = np.ix_(*crop_indices(plan.shape, small))
    part = spectra[0][idx]
    if len(spectra) > 1:  # the mean of the halves: (F1 + F2) / 2
        part += spectra[1][idx]
        part *= np.float32(0.5)
    s2 = frequency_squared(small, tuple(1.0 / n for n in plan.shape))
    part *= np.exp(np.float32(-2.0 * np.pi ** 2 * sigma ** 2) * s2)
    out = _fft.irfftn(part, small, overwrite_input=True, workers=plan.workers, backend=plan.backend)
    return resampled(out, plan.shape)


def flatten(plan: Plan, vol: Vol, envelope: Vol, cache: dict[str, Vol] | None = None) -> Vol:
    """The solvent of one final map flat at its level, outside a widened envelope (in place).

    The envelope is widened and softened before use: a tight edge cuts the tails of surface
    density, and a sharp one sharpens the particle's boundary, which puts content above the
    data's resolution (measured: with the envelope's own edge, probe (a) of
    ``bench_denoise`` found FSC 0.04 with the truth above the cut, at the linear filter's
    0.01 with this one).
    """
    level = np.float32(solvent_level(vol, envelope))
    keep = cache is not None and envelope is plan.mask  # the same for every map: made once per call
    soft = cache.get("mask") if cache is not None and keep else None
    if soft is None:
        soft = _widened(plan, envelope)
        if cache is not None and keep:
            cache["mask"] = soft

    def work(z0: int, z1: int) -> None:
        factor = resample_rows(soft, plan.shape, z0, z1)  # on the full grid, as resampled would
        factor *= np.float32(2.0)
        np.clip(factor, 0.0, 1.0, out=factor)
        part = vol[z0:z1]
        part -= level
        part *= factor
        part += level

    plan.run_slabs(work)
    return vol


def _widened(plan: Plan, envelope: Vol) -> Vol:
    """The envelope widened and softened for :func:`flatten`, on a grid subsampled by 2.

    Widened by twice the envelope's smoothing and smooth at that scale: the envelope is
    dilated (where its blur reaches 2 %), blurred again and (on the full grid) doubled, so it
    is 1 wherever the envelope is > 0 and its edge is far smoother than the map's resolution
    (a sharper edge would sharpen the particle's boundary: content above the data's
    resolution). The blurs are far wider than the subsampled grid's voxels.
    """
    sigma = float(plan.params.envelope_sigma_voxels or 1.0)  # twice this, in voxels of the grid
    sub = np.ascontiguousarray(envelope[::2, ::2, ::2])
    grown = prior_smooth(sub, sigma, workers=plan.workers, backend=plan.backend) > np.float32(0.02)
    return prior_smooth(grown.astype(np.float32), sigma, workers=plan.workers, backend=plan.backend)
