"""Global Fourier shell correlation, and what it says about a pair of half-maps."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from locband.engine import _fft
from locband.engine._checks import check_mask, check_same_shape, check_volume, pair_scale
from locband.engine._device import array_module, to_host
from locband.engine._grid import frequency_squared, frequency_squared_rows, rfft_multiplicity
from locband.engine.params import FSCCurve

__all__ = ["fsc", "fsc_from_spectra", "shell_index", "masked_for_fsc", "fsc_solvent_level",
           "check_independent_halves"]

# -- what independent half-maps can look like (check_independent_halves) -----------------------
#: "low resolution": periods of 8 voxels and longer. Every structure that locband can help with
#: is resolved there, so independent halves correlate positively (FSC near 1 at the lowest
#: shells); a half with inverted contrast turns that into a correlation near -1.
_LOW_FREQUENCY = 0.125
#: Anti-correlation is refused when the count-weighted mean FSC over shells 1..K is below
#: -max(_ANTI_Z sd_K, _ANTI_FLOOR) for some K up to _LOW_FREQUENCY. sd_K is the spread of that
#: mean for halves without common signal: the FSC of N Fourier coefficients of two independent
#: noise maps has sd 1/sqrt(N) (the real parts of N/2 independent complex products: N real
#: terms; measured 0.91-1.09 / sqrt(N) over 30-100 noise pairs at 24^3-64^3). 5 sd: one false
#: refusal of pure noise in 3.5 million per K, at most 32 nested K (256^3), which are strongly
#: correlated. Trying every K finds the anti-correlation where it is strongest: the lowest
#: shells of a noisy map, or many shells of a clean one. The floor covers noise that fills only
#: part of the box (fewer independent coefficients than N: a support of 1/27 of the box
#: multiplies sd by about 5, so 5 sd over K = 32 shells of 256^3, 0.014, becomes 0.07): an
#: inverted half of a map with structure gives -0.3 to -1 there (synthetic demo particle).
_ANTI_Z = 5.0
_ANTI_FLOOR = 0.1
#: Identical or dependent halves are refused when 1 - FSC, averaged (count-weighted) over the
#: upper half of the measured shells, is below _GAP. For independent halves 1 - FSC = 1/(1+r),
#: r the per-half SNR: 1e-5 needs r > 1e5 at every frequency of the upper half, beyond what
#: particles deliver (half a million particles per half with an SNR of 0.1 each at those
#: frequencies reach at most 5e4). The same map twice gives 0 up to float32 rounding (1e-9);
#: the synthetic demo particle gives 2e-4 with noise 1e-4 of an atom's peak and 2e-6 with 1e-5.
_GAP = 1e-5


def shell_index(shape: tuple[int, ...]) -> tuple[npt.NDArray[np.intp], int]:
    """Shell number of every rfft coefficient: ``round(|k| * max(shape))``, and the shell count.

    Shells are 1/max(shape) cycles/voxel wide; the last shell is Nyquist (0.5).
    """
    n = max(shape)
    s = np.sqrt(frequency_squared(tuple(shape), tuple(1.0 / m for m in shape)))
    idx = np.rint(s * n).astype(np.intp)
    n_shells = n // 2 + 1
    return np.minimum(idx, n_shells), n_shells


@lru_cache(maxsize=16)
def _shell_counts(shape: tuple[int, ...]) -> npt.NDArray[np.float64]:
    """Number of coefficients of the full (not rfft) spectrum in every shell (cached per box).

    Counted over slabs of planes, with the shells of :func:`shell_index` (the same float32
    frequencies): the whole grid of shell numbers would be two full-size int64 arrays, made
    while the filter holds the halves and their spectra (1 GiB more peak memory at 512^3).
    """
    n = max(shape)
    n_shells = n // 2 + 1
    steps = tuple(1.0 / m for m in shape)
    mult = rfft_multiplicity(shape)
    counts = np.zeros(n_shells + 1, dtype=np.float64)
    rows = max(1, 2 ** 22 // (int(np.prod(shape[1:-1])) * mult.size))  # ~4 M coefficients per slab
    for z0 in range(0, shape[0], rows):
        s2 = frequency_squared_rows(tuple(shape), steps, z0, min(z0 + rows, shape[0]))
        idx = np.minimum(np.rint(np.sqrt(s2) * n).astype(np.intp), n_shells)
        counts += np.bincount(idx.ravel(), weights=np.broadcast_to(mult, idx.shape).ravel(), minlength=n_shells + 1)
    out = counts[:n_shells].copy()
    out.setflags(write=False)
    return out


def fsc_from_spectra(f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64],
                     shape: tuple[int, ...]) -> FSCCurve:
    """FSC of two rfft spectra of real volumes of ``shape``.

    Shells beyond Nyquist (cube corners) are ignored. Shells where a spectrum has no power give
    0 and count 0 coefficients (nothing was measured there). Shell 0 holds the mean alone,
    which carries no resolution and which the engine removes: it is 1 by convention. Sums run
    over slabs of planes so that the temporaries stay small for large boxes.
    """
    n = max(shape)
    n_shells = n // 2 + 1
    steps = tuple(1.0 / m for m in shape)
    xp = array_module(f1)  # the spectra may live on a GPU (CuPy): sums there, curve on the host
    mult = xp.asarray(rfft_multiplicity(tuple(shape)))
    sums = xp.zeros((3, n_shells + 1), dtype=xp.float64)
    slab = max(1, 2 ** 22 // max(1, f1[0].size))  # ~4 M coefficients per slab
    for z0 in range(0, f1.shape[0], slab):
        z = slice(z0, z0 + slab)
        s2 = frequency_squared_rows(tuple(shape), steps, z0, min(z0 + slab, f1.shape[0]), xp)
        idx = xp.minimum(xp.rint(xp.sqrt(s2) * n).astype(xp.intp), n_shells).ravel()
        a, b = f1[z], f2[z]
        for k, v in enumerate(((a * xp.conj(b)).real, (a.real ** 2 + a.imag ** 2), (b.real ** 2 + b.imag ** 2))):
            sums[k] += xp.bincount(idx, weights=(v * mult).ravel(), minlength=n_shells + 1)
    sums = to_host(sums)
    num, p1, p2 = sums[0, :n_shells], sums[1, :n_shells], sums[2, :n_shells]
    den = np.sqrt(p1 * p2)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    curve[0] = 1.0
    freq = np.arange(n_shells, dtype=np.float64) / n
    counts = np.where(den > 0, _shell_counts(tuple(shape)), 0.0)
    return FSCCurve(frequency=freq, fsc=np.clip(curve, -1.0, 1.0), counts=counts)


def masked_for_fsc(volume: npt.NDArray[np.float32], mask: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``(volume - solvent level) * mask``, a new array: the input of a masked FSC.

    The solvent level is the mean of ``volume`` weighted by ``1 - mask`` (outside the
    particle), or the plain mean where the mask covers the whole box. A level left in the map
    would be cut into a copy of the mask's edge in both halves, a perfectly correlated shell
    that inflates the masked FSC (adding 10 to both halves moved a masked FSC=0.143 from 5.98
    to 3.97 Å); with it removed, adding a constant to a half changes nothing.
    """
    out = volume - np.float32(fsc_solvent_level(volume, mask))
    out *= mask
    return out


def fsc_solvent_level(volume: npt.NDArray[np.float32], mask: npt.NDArray[np.float32]) -> float:
    """The solvent level :func:`masked_for_fsc` removes: the mean of ``volume`` weighted by ``1 - mask``.

    The plain mean where the mask covers the whole box. ``volume`` may be a view with padded
    rows (:func:`locband.engine._fft.real_view`).
    """
    weight = total = 0.0
    slab = max(1, 2 ** 20 // max(1, volume[0].size))  # float64 sums over slabs: no full-size temporaries
    for z in range(0, volume.shape[0], slab):
        outside = np.float32(1.0) - mask[z:z + slab]
        weight += float(outside.sum(dtype=np.float64))
        total += float((volume[z:z + slab] * outside).sum(dtype=np.float64))
    return total / weight if weight > 0 else float(volume.mean(dtype=np.float64))


def check_independent_halves(curve: FSCCurve) -> None:
    """Raise ``ValueError`` if an FSC says the two half-maps cannot be independent halves.

    Parameters
    ----------
    curve : FSCCurve
        The unmasked FSC of the two halves, with ``counts``.

    Raises
    ------
    ValueError
        Anti-correlated at low resolution (one half with inverted contrast), or identical /
        agreeing far beyond what independent reconstructions can (FSC ~ 1 out to Nyquist).

    Notes
    -----
    The thresholds and why they are what they are: see the module constants ``_ANTI_Z``,
    ``_ANTI_FLOOR`` and ``_GAP``.
    """
    f, c = curve.frequency, curve.fsc
    n = curve.counts if curve.counts is not None else np.ones_like(f)
    measured = (f > 0) & (n > 0)
    low = measured & (f <= _LOW_FREQUENCY)
    if low.any():
        totals = np.cumsum(n[low])  # shells 1..K for every K
        means = np.cumsum(n[low] * c[low]) / totals
        limits = np.maximum(_ANTI_Z / np.sqrt(totals), _ANTI_FLOOR)
        worst = int(np.argmin(means + limits))
        if means[worst] < -limits[worst]:
            upto = float(f[low][worst])
            raise ValueError(f"half1 and half2 are anti-correlated at low resolution: mean FSC "
                             f"{float(means[worst]):.2f} up to {upto:.3f} cycles/voxel, where independent halves "
                             f"of one structure correlate positively (noise alone stays above "
                             f"{-float(limits[worst]):.2f}): one half may have inverted contrast (multiplied by -1)")
    if measured.any():
        outer = measured & (f >= 0.5 * float(f[measured].max()))
        gap = float((n[outer] * (1.0 - c[outer])).sum()) / float(n[outer].sum())
        if gap < _GAP:
            raise ValueError(f"half1 and half2 are identical or nearly so: 1 - FSC averages {gap:.1e} over the "
                             f"outer half of the shells (up to {float(f[outer].max()):.3f} cycles/voxel), where "
                             f"independent reconstructions stay above {_GAP:g}: the half-maps must come from two "
                             "separate halves of the data")


def fsc(half1: npt.ArrayLike, half2: npt.ArrayLike, *, mask: npt.ArrayLike | None = None,
        workers: int = 1, backend: str | None = None) -> FSCCurve:
    """Fourier shell correlation between two half-maps.

    Parameters
    ----------
    half1, half2 : (nz, ny, nx) array_like
        The half-maps.
    mask : (nz, ny, nx) array_like, optional
        Soft mask in [0, 1] multiplied into both halves first (a "masked FSC"), after removing
        each half's solvent level (see :func:`masked_for_fsc`).
    workers : int
        FFT threads.
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.

    Returns
    -------
    FSCCurve
        Shells of width ``1/max(shape)`` cycles/voxel from 0 to Nyquist.

    Notes
    -----
    ``FSC(s) = Re sum F1 F2* / sqrt(sum |F1|^2 sum |F2|^2)`` over the shell of radius ``s``.
    """
    h1 = check_volume(half1, name="half1")
    h2 = check_volume(half2, name="half2")
    check_same_shape(h1, h2, names=("half1", "half2"))
    norm = pair_scale(h1, h2)
    if mask is not None:
        m = check_mask(mask, h1.shape)
        h1, h2 = masked_for_fsc(h1, m), masked_for_fsc(h2, m)
    f1 = norm.normalise_spectrum(_fft.rfftn(h1, workers=workers, backend=backend), remove_mean=False)
    f2 = norm.normalise_spectrum(_fft.rfftn(h2, workers=workers, backend=backend), remove_mean=False)
    return fsc_from_spectra(f1, f2, h1.shape)
