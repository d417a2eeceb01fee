"""Reconstruction from back-projected Fourier sums, as RELION's ``BackProjector::reconstruct``.

RELION's ``--external_reconstruct`` hook hands over, per half-set and iteration, the
back-projected data (numerator), the back-projected CTF² weights (denominator) and the tau2
prior, all on the padded Fourier grid. This module turns them into a real-space map with
RELION's normalisation, either regularised (MAP, the map RELION itself would make) or
unregularised (no tau2 prior: the estimate locband's local Wiener weights start from).

Grid conventions (RELION writes them so): a padded box of ``P = round(pad * N)`` voxels per
edge for an original box of ``N``; spectra are FFTW half-complex, shape ``(P, P, P//2 + 1)``,
origin at ``[0, 0, 0]``; frequency indices along z and y run ``0..P/2-1, -P/2..-1``.

Gridding: RELION 3.1 grids (10 Pipe-Menon pre-weighting iterations with a Kaiser-Bessel blob)
by default inside ``relion_refine``; 4.0 and 5.0 skip it by default. This module implements the
skip-gridding path (``relion_external_reconstruct --skip_gridding``), which is exact, cheaper,
and differs from the gridded map by a real-space correlation of about 0.9997; the result is
filtered locally afterwards anyway, which changes the map far more than that.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from locband.engine import _fft

__all__ = ["reconstruct_from_sums", "soft_mask_outside_map", "padded_size"]

_SOFT_EDGE_VOXELS = 3.0  # RELION's softMaskOutsideMap default cosine width
_WEIGHT_FLOOR_FRACTION = 1e-3  # RELION: weights floored at 1/1000 of the shell's mean weight


def padded_size(ori_size: int, padding_factor: float) -> int:
    """Edge of RELION's padded Fourier grid, ``round(padding_factor * ori_size)``."""
    return int(math.floor(padding_factor * ori_size + 0.5))


def _freq_index_sq(shape: tuple[int, int, int]) -> npt.NDArray[np.int32]:
    """Squared integer frequency index ``kz² + ky² + kx²`` of every coefficient of a half-complex grid."""
    kz = np.fft.fftfreq(shape[0], 1.0 / shape[0]).astype(np.int32)
    ky = np.fft.fftfreq(shape[1], 1.0 / shape[1]).astype(np.int32)
    kx = np.arange(shape[2], dtype=np.int32)
    out: npt.NDArray[np.int32] = kz[:, None, None] ** 2 + ky[None, :, None] ** 2 + kx[None, None, :] ** 2
    return out


def _shells(r2: npt.NDArray[np.int32], padding_factor: float, *, rounded: bool) -> npt.NDArray[np.int32]:
    """RELION's shell of each coefficient: ``ROUND(|k| / pad)`` or ``FLOOR(|k| / pad)`` (int32, memory)."""
    r = np.sqrt(r2, dtype=np.float64) / padding_factor
    if rounded:
        r += 0.5
    out: npt.NDArray[np.int32] = np.floor(r).astype(np.int32)
    return out


def _add_map_prior(w: npt.NDArray[np.float32], r2: npt.NDArray[np.int32], inside: npt.NDArray[np.bool_],
                   *, tau2: npt.NDArray[np.float64], tau2_fudge: float, padding_factor: float) -> None:
    """Add RELION's MAP term ``1 / (pad³ T tau2(shell))`` to the weights inside the current size (in place)."""
    shell = _shells(r2, padding_factor, rounded=True)
    np.minimum(shell, tau2.size - 1, out=shell)
    pos = tau2 > 0
    table = np.zeros(tau2.size, np.float64)
    table[pos] = 1.0 / (padding_factor ** 3 * tau2_fudge * tau2[pos])
    prior = table.astype(np.float32)[shell]
    # RELION: where tau2 = 0 the prior term is 1 / (0.001 W) (and 0 where W is 0)
    zero = ~pos[shell] & (w > 1e-20)
    del shell
    prior[zero] = 1.0 / (_WEIGHT_FLOOR_FRACTION * w[zero])
    prior[~inside] = 0.0
    w += prior


def _weight_floor(w: npt.NDArray[np.float32], r2: npt.NDArray[np.int32], *, r_max: int,
                  padding_factor: float) -> npt.NDArray[np.float32]:
    """Per coefficient, 1/1000 of the mean weight of its shell (shells beyond ``r_max`` use the last)."""
    lim = int(math.floor((r_max * padding_factor) ** 2 + 0.5))
    sel = r2 < lim
    shell = _shells(r2, padding_factor, rounded=False)
    total = np.bincount(shell[sel], weights=w[sel], minlength=r_max)[:r_max]
    count = np.bincount(shell[sel], minlength=r_max)[:r_max].astype(np.float64)
    table = np.divide(total, _WEIGHT_FLOOR_FRACTION ** -1 * count, out=np.zeros(r_max), where=count > 0)
    np.minimum(shell, r_max - 1, out=shell)
    out: npt.NDArray[np.float32] = table.astype(np.float32)[shell]
    return out


def _window_real(vol: npt.NDArray[np.float32], ori_size: int) -> npt.NDArray[np.float32]:
    """Centre a padded real-space volume (origin at [0,0,0]) and cut out the central ``ori_size`` box."""
    p = vol.shape[0]
    centred = np.roll(vol, (p // 2, p // 2, p // 2), axis=(0, 1, 2))
    lo = p // 2 - ori_size // 2
    return np.ascontiguousarray(centred[lo:lo + ori_size, lo:lo + ori_size, lo:lo + ori_size])


def _radius_from_centre(n: int) -> npt.NDArray[np.float64]:
    """Distance of every voxel of an ``n``³ box from RELION's centre voxel ``n // 2``."""
    c = np.arange(n, dtype=np.float64) - n // 2
    return np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2)


def soft_mask_outside_map(vol: npt.NDArray[np.float32], *, radius_voxels: float | None = None,
                          edge_voxels: float = _SOFT_EDGE_VOXELS) -> npt.NDArray[np.float32]:
    """Replace the corners of a cubic box by their mean behind a raised-cosine edge.

    Parameters
    ----------
    vol : (n, n, n) ndarray of float32
        Map with its centre at voxel ``n // 2``.
    radius_voxels : float, optional
        Radius inside which the map is kept; default ``n / 2``.
    edge_voxels : float
        Width of the raised-cosine transition.

    Returns
    -------
    (n, n, n) ndarray of float32
        A new array.

    Notes
    -----
    As RELION's ``softMaskOutsideMap`` without a noise volume: the background value is the
    edge-weighted mean outside ``radius``; beyond ``radius + edge`` voxels take that value.
    """
    n = vol.shape[0]
    radius = n / 2.0 if radius_voxels is None else float(radius_voxels)
    r = _radius_from_centre(n)
    outer = radius + edge_voxels
    # weight of the background: 0 inside radius, 1 beyond radius + edge, raised cosine between
    bg_w = np.where(r > outer, 1.0, 0.5 + 0.5 * np.cos(np.pi * (outer - r) / edge_voxels))
    bg_w[r < radius] = 0.0
    total = bg_w.sum()
    if total <= 0:
        return vol.copy()
    bg = float((bg_w * vol).sum() / total)
    return ((1.0 - bg_w) * vol + bg_w * bg).astype(np.float32)


def reconstruct_from_sums(data: npt.ArrayLike, weight: npt.ArrayLike, *, ori_size: int, padding_factor: float,
                          current_size: int, tau2: npt.ArrayLike | None = None, tau2_fudge: float = 1.0,
                          workers: int = 1, backend: str | None = None) -> npt.NDArray[np.float32]:
    """Real-space map from RELION's back-projected data and weight sums.

    Parameters
    ----------
    data : (P, P, P//2 + 1) array_like of complex
        Back-projected data on the padded grid (FFTW half-complex, origin at [0, 0, 0]).
    weight : (P, P, P//2 + 1) array_like of float
        Back-projected CTF² weights on the same grid.
    ori_size : int
        Original box edge ``N`` in voxels (the output is ``N``³).
    padding_factor : float
        RELION's ``--pad`` (``P = round(pad * N)``).
    current_size : int
        Fourier box used in this iteration (``2 r_max``); coefficients beyond ``r_max * pad`` are
        ignored, as in RELION.
    tau2 : (N//2 + 1,) array_like, optional
        Signal power prior per shell (``rlnReferenceTau2``). With it, the MAP (regularised)
        reconstruction RELION would make; without it, the unregularised one (weights only
        floored at 1/1000 of their shell mean, to avoid division by zero).
    tau2_fudge : float
        ``T`` (``--tau2_fudge``), multiplies tau2.
    workers : int
        FFT threads.
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.

    Returns
    -------
    (N, N, N) ndarray of float32
        The map at RELION's grey scale, centred at voxel ``N // 2``.

    Raises
    ------
    ValueError
        Array shapes that disagree with ``ori_size`` and ``padding_factor``, a tau2 table of the
        wrong length, negative tau2, non-finite values, bad sizes.

    Notes
    -----
    ``F = D / max(W + [1 / (pad³ T tau2(s))], W̄(s) / 1000)`` with ``s = round(|k| / pad)`` for the
    prior and ``floor(|k| / pad)`` for the shell mean ``W̄``; inverse FFT on the padded grid,
    centre, window to ``N``, divide by ``pad³ N`` (RELION's FFT normalisation for 2-D images into
    a 3-D map), soft-mask the corners (``softMaskOutsideMap``, radius ``N/2``, 3 voxels), and
    divide by ``sinc²(r / (N pad))`` (trilinear-interpolation gridding correction).

    References
    ----------
    Scheres, S. H. W. (2012). RELION: implementation of a Bayesian approach to cryo-EM structure
    determination. J. Struct. Biol. 180, 519-530. RELION ``src/backprojector.cpp``
    (``reconstruct`` with ``skip_gridding``, ``windowToOridimRealSpace``) and ``src/projector.cpp``
    (``griddingCorrect``).
    """
    n, pad, cur = _check_sizes(ori_size, padding_factor, current_size)
    p = padded_size(n, pad)
    d = np.asarray(data)
    w = np.asarray(weight)
    expected = (p, p, p // 2 + 1)
    for name, arr in (("data", d), ("weight", w)):
        if arr.shape != expected:
            raise ValueError(f"{name} must have shape {expected} for ori_size {n} and padding_factor {pad:g}, "
                             f"got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} has {int(arr.size - np.isfinite(arr).sum())} non-finite values")
    r_max = cur // 2
    r2 = _freq_index_sq(expected)
    inside = r2 < int(math.floor(r_max * pad + 0.5)) ** 2
    # float32 like RELION's files; the small per-shell tables are float64
    w = np.where(inside, w, 0.0).astype(np.float32)  # RELION copies the sums only inside the current size
    if tau2 is not None:
        t = _check_tau2(tau2, n, tau2_fudge)
        _add_map_prior(w, r2, inside, tau2=t, tau2_fudge=tau2_fudge, padding_factor=pad)
    den = np.maximum(w, _weight_floor(w, r2, r_max=max(r_max, 1), padding_factor=pad))
    del w, r2
    spec = np.zeros(expected, np.complex64)
    np.divide(d.astype(np.complex64, copy=False), den, out=spec, where=inside & (den > 0))
    del den, inside
    pe = p + p % 2  # RELION makes the padded real-space grid even before the inverse FFT
    if pe != p:
        spec = _grow_spectrum(spec, pe)
    vol = _fft.irfftn(spec, (pe, pe, pe), workers=workers, backend=backend)
    vol = _window_real(vol, n)
    vol /= np.float32(pad ** 3 * n)
    vol = soft_mask_outside_map(vol)
    return _gridding_correct(vol, pad)


def _grow_spectrum(spec: npt.NDArray[np.complex64], m: int) -> npt.NDArray[np.complex64]:
    """Zero-pad a half-complex spectrum of edge ``P`` onto an edge ``m > P`` (same frequencies)."""
    p = spec.shape[0]
    out = np.zeros((m, m, m // 2 + 1), spec.dtype)
    idx = np.fft.fftfreq(p, 1.0 / p).astype(np.int64) % m
    out[np.ix_(idx, idx, np.arange(spec.shape[2]))] = spec
    return out


def _gridding_correct(vol: npt.NDArray[np.float32], pad: float) -> npt.NDArray[np.float32]:
    """Divide by the Fourier transform of trilinear interpolation, ``sinc²(r / (N pad))``."""
    n = vol.shape[0]
    rval = _radius_from_centre(n) / (n * pad)
    s = np.sinc(rval)  # numpy's sinc is sin(pi x) / (pi x), 1 at 0 as RELION's "r == 0: divide by 1"
    out: npt.NDArray[np.float32] = (vol / (s * s)).astype(np.float32)
    return out


def _check_sizes(ori_size: object, padding_factor: object, current_size: object) -> tuple[int, float, int]:
    if isinstance(ori_size, bool) or not isinstance(ori_size, (int, np.integer)) or ori_size < 8:
        raise ValueError(f"ori_size must be an integer >= 8, got {ori_size!r}")
    try:
        pad = float(padding_factor)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"padding_factor must be a number, got {padding_factor!r}") from None
    if not math.isfinite(pad) or not 1.0 <= pad <= 4.0:
        raise ValueError(f"padding_factor must be a number in [1, 4], got {padding_factor!r}")
    if isinstance(current_size, bool) or not isinstance(current_size, (int, np.integer)) or current_size < 2:
        raise ValueError(f"current_size must be an integer >= 2, got {current_size!r}")
    return int(ori_size), pad, min(int(current_size), int(ori_size))


def _check_tau2(tau2: npt.ArrayLike, n: int, tau2_fudge: float) -> npt.NDArray[np.float64]:
    t = np.asarray(tau2, dtype=np.float64).ravel()
    if t.size != n // 2 + 1:
        raise ValueError(f"tau2 must have ori_size // 2 + 1 = {n // 2 + 1} shells, got {t.size}")
    if not np.isfinite(t).all() or (t < 0).any():
        raise ValueError("tau2 must be finite and >= 0 in every shell")
    if not (math.isfinite(tau2_fudge) and tau2_fudge > 0):
        raise ValueError(f"tau2_fudge must be a finite number > 0, got {tau2_fudge!r}")
    return t
