"""Fourier sums of a known map, as relion_refine hands them to the hook (tests and benchmarks only).

The inverse of :func:`locband.engine.reconstruct.reconstruct_from_sums`: sums that reconstruct
to a given map, and two noisy half sets with RELION's tau2 and FSC.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from locband.engine.reconstruct import _freq_index_sq, _radius_from_centre, padded_size

__all__ = ["forward_sums", "simulate_half_sums"]


def forward_sums(volume: npt.ArrayLike, *, padding_factor: float,
                 weight: npt.ArrayLike) -> npt.NDArray[np.complex64]:
    """Data sums that reconstruct (without prior) to ``volume``: the inverse of the steps above.

    For tests and simulations with a known answer: ``reconstruct_from_sums(forward_sums(v, W), W,
    current_size=N)`` returns ``v`` up to the band limit of the current size (and the corner
    soft mask, which leaves compact objects alone).

    Parameters
    ----------
    volume : (N, N, N) array_like of float
        Map centred at voxel ``N // 2``.
    padding_factor : float
        RELION's ``--pad``.
    weight : (P, P, P//2 + 1) array_like of float
        The weights the sums were accumulated with (``D = F W``).

    Returns
    -------
    (P, P, P//2 + 1) ndarray of complex64
        ``D``, with RELION's scale and layout.
    """
    v = np.asarray(volume, dtype=np.float64)
    n = v.shape[0]
    if v.ndim != 3 or v.shape != (n, n, n):
        raise ValueError(f"volume must be a cubic (N, N, N) array, got shape {v.shape}")
    pad = float(padding_factor)
    p = padded_size(n, pad)
    w = np.asarray(weight, dtype=np.float64)
    if w.shape != (p, p, p // 2 + 1):
        raise ValueError(f"weight must have shape {(p, p, p // 2 + 1)}, got {w.shape}")
    s = np.sinc(_radius_from_centre(n) / (n * pad))
    pe = p + p % 2  # the even grid the reconstruction transforms on (see reconstruct_from_sums)
    big = np.zeros((pe, pe, pe))
    lo = pe // 2 - n // 2
    big[lo:lo + n, lo:lo + n, lo:lo + n] = v * s * s
    big = np.roll(big, (-(pe // 2),) * 3, axis=(0, 1, 2))
    f = np.fft.rfftn(big) / big.size * (pad ** 3 * n)
    idx = np.fft.fftfreq(p, 1.0 / p).astype(np.int64) % pe
    f = f[np.ix_(idx, idx, np.arange(p // 2 + 1))]
    out: npt.NDArray[np.complex64] = (f * w).astype(np.complex64)
    return out


def simulate_half_sums(truth: npt.ArrayLike, *, padding_factor: float = 2.0, current_size: int | None = None,
                       noise_power: float = 1.0, seed: int = 0, tau2_fudge: float = 1.0
                       ) -> tuple[npt.NDArray[np.complex64], npt.NDArray[np.complex64], npt.NDArray[np.float32],
                                  npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Two half sets' Fourier sums of a known map, as relion_refine hands them to the hook.

    For tests and benchmarks. Weights are smooth and anisotropic. Each half gets independent
    noise that, like the noise of particle images, lives in the original box: white noise of
    variance ``noise_power`` per voxel, carried to the padded grid as the signal is and scaled by
    ``sqrt(W)``, so the unregularised half is the truth plus that noise filtered by ``1/sqrt(W)``.
    tau2 and FSC follow RELION's own ``updateSSNRarrays``: the FSC of the two unregularised halves per shell (clipped to
    [0.001, 0.999]), ``sigma2 = 1 / (pad³ <W>)`` and ``tau2 = T FSC / (1 - FSC) sigma2``.

    Parameters
    ----------
    truth : (N, N, N) array_like
        The map (centred at ``N // 2``).
    padding_factor : float
        RELION's ``--pad``.
    current_size : int, optional
        Fourier box in use (default ``N``).
    noise_power : float
        Noise variance per voxel of the box (before the ``1/sqrt(W)`` filter).
    seed : int
        Random seed.
    tau2_fudge : float
        ``T``.

    Returns
    -------
    data1, data2 : (P, P, P//2 + 1) ndarray of complex64
    weight : (P, P, P//2 + 1) ndarray of float32
        The same for both halves.
    tau2, fsc : (N//2 + 1,) ndarray of float64
    """
    v = np.asarray(truth, dtype=np.float64)
    n = v.shape[0]
    pad = float(padding_factor)
    cur = n if current_size is None else int(current_size)
    p = padded_size(n, pad)
    shape = (p, p, p // 2 + 1)
    r2 = _freq_index_sq(shape)
    inside = r2 < int(math.floor(cur // 2 * pad + 0.5)) ** 2
    kz = np.fft.fftfreq(p, 1.0 / p)[:, None, None]
    w = 1000.0 * np.exp(-np.sqrt(r2) / p) * (1.0 + 0.3 * np.cos(2 * np.pi * kz / p) ** 2)
    w = np.where(inside, w, 0.0)
    rng = np.random.default_rng(seed)
    clean = forward_sums(v, padding_factor=pad, weight=w).astype(np.complex128)
    halves = []
    for _ in range(2):
        # noise confined to the original box, as the noise of the particle images is: white noise
        # of the box, carried to the padded grid like the signal, then scaled by sqrt(W)
        box_noise = rng.standard_normal(v.shape) * math.sqrt(noise_power)
        noise = forward_sums(box_noise, padding_factor=pad, weight=np.ones(shape)).astype(np.complex128)
        halves.append(np.where(inside, clean + noise * np.sqrt(w), 0))
    x1, x2 = (np.divide(h, w, out=np.zeros(shape, complex), where=w > 0) for h in halves)
    shell = np.floor(np.sqrt(r2) / pad + 0.5).astype(np.int64).ravel()
    keep = inside.ravel() & (shell <= n // 2)
    m = n // 2 + 1
    cross = np.bincount(shell[keep], (x1 * x2.conj()).real.ravel()[keep], minlength=m)[:m]
    p1 = np.bincount(shell[keep], (np.abs(x1) ** 2).ravel()[keep], minlength=m)[:m]
    p2 = np.bincount(shell[keep], (np.abs(x2) ** 2).ravel()[keep], minlength=m)[:m]
    fsc = np.divide(cross, np.sqrt(p1 * p2), out=np.zeros(m), where=p1 * p2 > 0)
    wsum = np.bincount(shell[keep], w.ravel()[keep], minlength=m)[:m]
    cnt = np.bincount(shell[keep], minlength=m)[:m]
    sigma2 = np.divide(cnt, pad ** 3 * wsum, out=np.zeros(m), where=wsum > 0)
    f = np.clip(fsc, 0.001, 0.999)
    tau2 = np.where(cnt > 0, tau2_fudge * f / (1 - f) * sigma2, 0.0)
    fsc[cnt == 0] = 0.0
    return (halves[0].astype(np.complex64), halves[1].astype(np.complex64), w.astype(np.float32), tau2, fsc)
