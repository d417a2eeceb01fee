"""The FSC curves of an interpretation map: raw, masked, and the cross-validation of each processed half.

Half ``i`` is processed from its own voxel values and the statistics only, so its agreement with
the *raw* other half, shell by shell, measures what the processing added: with independent
noise, ``FSC(processed 1, raw 2)`` is ``FSC(processed 1, truth) FSC(truth, raw 2)``. Both
directions are made, for the denoised halves and for the linear filter's halves, unmasked and
(with a mask) masked.

**Cost.** The FSC curves (raw, masked, and the eight cross-validation curves) are per-shell sums
made in one pass over each spectrum (:mod:`locband.engine._shells`); the processed halves'
spectra are made in the call's two reused buffers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine import _fft
from locband.engine._denoise_plan import Buffers, Plan, Vol
from locband.engine._shells import fsc_curve
from locband.engine.fsc import fsc_solvent_level
from locband.engine.params import FSCCurve

__all__ = ["CrossCurves", "cross_validate", "envelope_noise", "raw_sums"]

#: a processed half against the raw other half, both directions: unmasked, then masked (None without a mask)
CrossCurves = tuple[tuple[FSCCurve, FSCCurve], tuple[FSCCurve, FSCCurve] | None]


def raw_sums(plan: Plan, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64]) -> npt.NDArray[np.float64]:
    """Per-shell sums of the raw halves: ``Re(F1 conj F2)``, ``|F1|^2``, ``|F2|^2`` and the envelope's noise.

    The fourth row sums ``|F1 - F2|^2 g^2`` (``g`` the envelope's Gaussian smoothing): half of
    its total is the noise variance of one raw half after that smoothing.
    """
    sigma = float(plan.params.envelope_sigma_voxels or 1.0)
    k = np.float32(-2.0 * np.pi ** 2 * sigma ** 2)

    def produce(z0: int, z1: int, s2: Any) -> list[Any]:
        a, b = f1[z0:z1], f2[z0:z1]
        diff = a - b
        power = diff.real ** 2 + diff.imag ** 2
        g = np.exp(k * s2)
        power *= g * g
        return [(a * np.conj(b)).real, a.real ** 2 + a.imag ** 2, b.real ** 2 + b.imag ** 2, power]

    return plan.shells.sums(produce, 4)


def envelope_noise(raw: npt.NDArray[np.float64]) -> float:
    """Noise variance of one raw half after the envelope's smoothing (see :func:`raw_sums`)."""
    # |F1 - F2|^2 / 2 per coefficient is the noise power of one half
    return 0.5 * float(raw[3].sum())


def _masked_raw(plan: Plan, f: npt.NDArray[np.complex64], into: npt.NDArray[np.complex64] | None = None
                ) -> npt.NDArray[np.complex64]:
    """Spectrum of a raw half, solvent level removed, times the mask (as ``locband filter``'s masked FSC).

    Made in ``into`` (a spectrum no longer needed) when given, else in a new buffer.
    """
    assert plan.mask is not None
    if into is None:
        buf = f.copy()
    else:
        buf = into
        np.copyto(buf, f)
    vol = _fft.irfftn(buf, plan.shape, overwrite_input=True, out=_fft.real_view(buf, plan.shape),
                      workers=plan.workers, backend=plan.backend)
    _masked_spectra(plan, vol, [buf], unmasked=False)
    return buf


def _masked_spectra(plan: Plan, vol: Vol, out: list[Any], *, unmasked: bool) -> None:
    """Spectra of ``vol`` (with ``unmasked``) and of ``masked_for_fsc(vol, mask)``, into ``out`` (in place allowed).

    The mean of the masked map carries no signal: its coefficient is set to 0, as for
    ``locband filter``'s masked FSC.
    """
    mask = plan.mask
    assert mask is not None
    level = np.float32(fsc_solvent_level(vol, mask))

    def produce(z0: int, z1: int) -> list[Vol]:
        masked = vol[z0:z1] - level
        masked *= mask[z0:z1]
        return [vol[z0:z1], masked] if unmasked else [masked]

    _fft.rfftn_slabs(produce, plan.shape, out, workers=plan.workers, backend=plan.backend)
    out[-1][(0,) * out[-1].ndim] = 0


def _cross_sums(plan: Plan, vol: Vol, raw: npt.NDArray[np.complex64], raw_masked: npt.NDArray[np.complex64] | None,
                bufs: Buffers) -> npt.NDArray[np.float64]:
    """Per-shell sums of a processed half against a raw other half: ``Re(P conj F)``, ``|P|^2`` (masked too).

    Four rows with a mask (unmasked pair, then the masked pair), two without.
    """
    spec, masked = bufs.pair(plan.shape)
    if raw_masked is None:
        _fft.rfftn_slabs(lambda z0, z1: [vol[z0:z1]], plan.shape, [spec], workers=plan.workers,
                         backend=plan.backend)
        pairs = [(spec, raw)]
    else:
        _masked_spectra(plan, vol, [spec, masked], unmasked=True)
        pairs = [(spec, raw), (masked, raw_masked)]
    return _pair_sums(plan, pairs, both_powers=False)


def _pair_sums(plan: Plan, pairs: list[tuple[Any, Any]], *, both_powers: bool) -> npt.NDArray[np.float64]:
    """Per pair ``(P, F)`` of spectra the per-shell sums of ``Re(P conj F)``, ``|P|^2`` (and ``|F|^2``)."""
    def produce(z0: int, z1: int, s2: Any) -> list[Any]:
        out = []
        for p, f in pairs:
            a, b = p[z0:z1], f[z0:z1]
            out += [(a * np.conj(b)).real, a.real ** 2 + a.imag ** 2]
            if both_powers:
                out.append(b.real ** 2 + b.imag ** 2)
        return out

    return plan.shells.sums(produce, (3 if both_powers else 2) * len(pairs))


def cross_validate(plan: Plan, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64],
                   raw: npt.NDArray[np.float64], linear: list[Vol], maps: list[Vol], bufs: Buffers
                   ) -> tuple[FSCCurve | None, CrossCurves, CrossCurves]:
    """The masked raw FSC, and the FSCs of each processed half (linear, then denoised) with the raw other half.

    Half 2's masked raw spectrum is made first, for the half-1 curves; half 1's is then made in
    the memory of half 2's raw spectrum (``f2`` is overwritten: nothing needs it any more).
    The processed halves' spectra are made in the two buffers of ``bufs``.
    """
    masked = plan.mask is not None
    m2 = _masked_raw(plan, f2) if masked else None
    sums = {("linear", 0): _cross_sums(plan, linear[0], f2, m2, bufs),
            ("denoised", 0): _cross_sums(plan, maps[0], f2, m2, bufs)}
    m1 = _masked_raw(plan, f1, into=f2) if masked else None  # half 2's raw spectrum is not needed any more
    fsc_masked = None
    if m1 is not None and m2 is not None:
        rm = _pair_sums(plan, [(m1, m2)], both_powers=True)
        fsc_masked = fsc_curve(rm[0], rm[1], rm[2], plan.shape)
        p_masked = (rm[1], rm[2])
    del m2
    sums[("linear", 1)] = _cross_sums(plan, linear[1], f1, m1, bufs)
    sums[("denoised", 1)] = _cross_sums(plan, maps[1], f1, m1, bufs)
    del m1
    bufs.release()
    p_raw = (raw[1], raw[2])
    out = []
    for kind in ("linear", "denoised"):
        # half 1 against raw half 2, half 2 against raw half 1
        un = tuple(fsc_curve(sums[kind, i][0], sums[kind, i][1], p_raw[1 - i], plan.shape) for i in (0, 1))
        ma = None if not masked else tuple(
            fsc_curve(sums[kind, i][2], sums[kind, i][3], p_masked[1 - i], plan.shape) for i in (0, 1))
        out.append((un, ma))
    return fsc_masked, out[0], out[1]  # type: ignore[return-value]
