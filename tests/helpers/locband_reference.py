"""The local filter as it was before the speed work (commit 40b273a), frozen as a reference.

A verbatim copy of the algorithm of ``locband.engine.local`` at that commit (band maps, local
statistics, shrinkage and garrote, weighting, summation of the bands, local resolution), with
its helpers (band weights, Gaussian windows, Fourier cropping, linear resampling) copied too and
every FFT done by ``scipy.fft`` with ``norm="forward"``, which was the engine's ``backend="scipy"``.
It depends on the engine only for the band layout (``band_layout``), so later changes to the
engine's internals cannot change what it computes. ``tests/engine/test_regression.py`` compares
the optimised engine with it.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from locband.engine.bands import band_layout
from locband.engine.params import FilterParams

_NOISE_WINDOW = 2.0


def _rfftn(x):
    return np.asarray(scipy.fft.rfftn(np.asarray(x, np.float32), norm="forward"), dtype=np.complex64)


def _irfftn(f, shape):
    return np.asarray(scipy.fft.irfftn(f, s=tuple(shape), norm="forward"), dtype=np.float32)


def _frequency_squared(grid, steps):
    fz = (np.fft.fftfreq(grid[0], d=1.0 / grid[0]) * steps[0])[:, None, None] ** 2
    fy = (np.fft.fftfreq(grid[1], d=1.0 / grid[1]) * steps[1])[None, :, None] ** 2
    fx = (np.arange(grid[2] // 2 + 1) * steps[2])[None, None, :] ** 2
    return (fz + fy + fx).astype(np.float32)


def _crop_indices(full, crop):
    out = []
    for axis, (n, m) in enumerate(zip(full, crop, strict=True)):
        idx = np.r_[0:(m + 1) // 2, n - m // 2:n] if axis < len(full) - 1 else np.arange(m // 2 + 1)
        out.append(idx.astype(np.intp))
    return tuple(out)


def _band_weight(s, c, b):
    s = np.asarray(s, dtype=np.float32)
    n = len(c)
    w = np.zeros(s.shape, dtype=np.float32)
    if b > 0:
        lo, mid = np.float32(c[b - 1]), np.float32(c[b])
        sel = (s > lo) & (s < mid)
        w[sel] = np.sin(np.float32(np.pi / 2) * (s[sel] - lo) / (mid - lo)) ** 2
    if b < n - 1:
        mid, hi = np.float32(c[b]), np.float32(c[b + 1])
        sel = (s >= mid) & (s < hi)
        w[sel] = np.cos(np.float32(np.pi / 2) * (s[sel] - mid) / (hi - mid)) ** 2
        if b == 0:
            w[s < mid] = 1.0
    else:
        w[s >= np.float32(c[b])] = 1.0
    return w


def _gaussian_window(s2, sigma):
    return np.asarray(np.exp(np.float32(-2.0 * np.pi ** 2 * sigma ** 2) * s2), dtype=np.float32)


def _lerp_axis(vol, n_out, axis):
    n_in = vol.shape[axis]
    pos = np.arange(n_out) * (n_in / n_out)
    i0 = np.floor(pos).astype(np.intp)
    frac = (pos - i0).astype(np.float32)
    shape = [1] * vol.ndim
    shape[axis] = n_out
    lo = np.take(vol, i0 % n_in, axis=axis)
    hi = np.take(vol, (i0 + 1) % n_in, axis=axis)
    hi -= lo
    hi *= frac.reshape(shape)
    lo += hi
    return lo


def _resample_linear(vol, shape):
    shape = tuple(int(s) for s in shape)
    if vol.shape == shape:
        return vol
    out = np.asarray(vol, dtype=np.float32)
    for axis in (2, 1, 0):
        if out.shape[axis] != shape[axis]:
            out = _lerp_axis(out, shape[axis], axis)
    return np.ascontiguousarray(out)


def _smooth(x, g, idx, small):
    spec = _rfftn(x)
    spec = spec if idx is None else spec[idx]
    spec *= g
    return _irfftn(spec, small)


def _signal(c, d, n_eff, m, noise_threshold):
    v = np.square(d) * np.float32(1.0 / n_eff)
    wsum = float(m.sum()) if m is not None else float(c.size)

    def mean(a):
        return float((a * m).sum()) / wsum if m is not None else float(a.mean())

    level = mean(c)
    prior = np.float32(level) * m if m is not None else np.float32(level)
    tau2 = max(mean(np.square(c - prior)) - mean(v), 0.0)
    k = np.float32(tau2) / (np.float32(tau2) + v) if tau2 > 0 else np.zeros_like(c)
    x = prior + k * (c - prior)
    np.maximum(x, 0, out=x)
    sd = d * k * np.float32(noise_threshold / math.sqrt(n_eff))
    np.square(sd, out=sd)
    np.divide(sd, x, out=sd, where=x > 0)
    return np.maximum(x - sd, 0)


def reference_filter(h1, h2, *, mask=None, params=None):
    """``(half1, half2, full, local_frequency)`` of the old engine for float32 halves."""
    params = params if params is not None else FilterParams()
    h1 = np.asarray(h1, np.float32)
    h2 = np.asarray(h2, np.float32)
    shape = h1.shape
    lay = band_layout(shape, params)
    stats_shape = tuple(min(n, params.stats_grid) for n in shape)
    steps = tuple(1.0 / n for n in shape)
    f1, f2 = _rfftn(h1), _rfftn(h2)
    s2_full = _frequency_squared(shape, steps)
    mask_spec = None if mask is None else _rfftn(mask)
    cropped = [g for g in lay.grid_shapes if g != shape]
    acc_grid = tuple(max(g[i] for g in cropped) for i in range(3)) if cropped else shape
    spectra = [np.zeros(acc_grid[:-1] + (acc_grid[-1] // 2 + 1,), np.complex64) for _ in range(3)]
    real = []
    frequency = np.full(stats_shape, lay.centres[-1], np.float32)
    found = np.zeros(stats_shape, bool)
    prev = None
    crit = np.float32(params.criterion)

    def to_real():
        while spectra:
            spec = np.zeros(shape[:-1] + (shape[-1] // 2 + 1,), np.complex64)
            spec[np.ix_(*_crop_indices(shape, acc_grid))] = spectra.pop(0)
            real.append(_irfftn(spec, shape))

    for b in range(lay.n_bands):
        grid, small = lay.grid_shapes[b], lay.stats_shapes[b]
        idx = None if grid == shape else np.ix_(*_crop_indices(shape, grid))
        s2 = s2_full if idx is None else s2_full[idx]
        w = _band_weight(np.sqrt(s2), np.asarray(lay.centres), b)
        sidx = None if small == grid else np.ix_(*_crop_indices(grid, small))
        s2_small = s2 if sidx is None else s2[sidx]
        gs = _gaussian_window(s2_small, lay.sigma_voxels[b])
        gn = _gaussian_window(s2_small, lay.sigma_voxels[b] * _NOISE_WINDOW)
        b1 = _irfftn((f1 if idx is None else f1[idx]) * w, grid)
        b2 = _irfftn((f2 if idx is None else f2[idx]) * w, grid)
        c = _smooth(b1 * b2, gs, sidx, small)
        diff = b1 - b2
        np.multiply(diff, diff, out=diff)
        diff *= np.float32(0.5)
        d = _smooth(diff, gn, sidx, small)
        np.maximum(d, 0, out=d)
        m = None
        if mask_spec is not None:
            m = _irfftn(mask_spec[np.ix_(*_crop_indices(shape, small))], small).clip(0, 1)
        sig = _signal(c, d, lay.n_effective[b], m, params.noise_threshold)
        den = sig + d
        w_half = np.divide(sig, den, out=np.zeros_like(sig), where=den > 0)
        stats = (_resample_linear(sig, stats_shape), _resample_linear(d, stats_shape))
        w_half = _resample_linear(w_half, b1.shape)
        w_full = w_half / (1 + w_half)
        full = b1 + b2
        full *= w_full
        b1 *= w_half
        b2 *= w_half
        if grid == shape:
            to_real()
            for target, part in zip(real, (b1, b2, full), strict=True):
                target += part
        else:
            sub = np.ix_(*_crop_indices(acc_grid, grid))
            for spec, part in zip(spectra, (b1, b2, full), strict=True):
                spec[sub] += _rfftn(part)
        sig, noise = stats
        den = sig + noise
        loc = np.divide(sig, den, out=np.ones_like(sig), where=den > 0)
        if prev is None:
            cross = loc < crit
            frequency[cross] = 0.0
        else:
            cross = ~found & (loc < crit)
            t = np.clip((prev - crit) / np.maximum(prev - loc, np.float32(1e-12)), 0, 1)
            c0, c1 = lay.centres[b - 1], lay.centres[b]
            frequency[cross] = (c0 + t * (c1 - c0))[cross]
        found |= cross
        prev = loc
    to_real()
    out1, out2, outf = real
    if params.apply_mask and mask is not None:
        for o in (out1, out2, outf):
            o *= mask
    floor = np.float32(1.0 / max(shape))
    local_freq = np.maximum(_resample_linear(frequency, shape), floor)
    return out1, out2, outf, local_freq.astype(np.float32)
