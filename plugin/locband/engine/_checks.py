"""Input validation shared by the engine's public functions.

Messages name the parameter, what was expected and what was found, so that adapters can pass
them on unchanged (adding the file name they know about).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["check_volume", "check_same_shape", "check_mask", "check_positive", "PairScale", "pair_scale"]

#: accepted spread of a half-map's values about its mean. The engine computes in float32: a
#: forward FFT sums up to 2**30 voxels (1024^3), which must stay below float32's 3.4e38, and
#: values far below 1e-25 approach float32's subnormal range (1.2e-38) once multiplied by
#: window and band weights. Inside these limits every result is independent of the scale.
_VALUE_SPAN = (1e-25, 1e25)


def check_volume(volume: object, *, name: str, allow_constant: bool = False) -> npt.NDArray[np.float32]:
    """Return ``volume`` as a C-contiguous float32 ``(nz, ny, nx)`` array, or raise.

    Real floating and integer inputs are converted to float32 (the engine computes in float32
    throughout, see the README). Complex, boolean and object arrays are rejected.

    Raises
    ------
    TypeError
        Not a real numeric array.
    ValueError
        Not 3-D, empty, non-finite values, or (unless ``allow_constant``) constant.
    """
    arr = np.asarray(volume)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real float or integer array, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise ValueError(f"{name} must be a 3-D volume (nz, ny, nx), got shape {arr.shape}")
    if arr.size == 0 or min(arr.shape) < 2:
        raise ValueError(f"{name} must have at least 2 voxels along each axis, got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(out)
    if not finite.all():
        bad = int(out.size - np.count_nonzero(finite))
        raise ValueError(f"{name} has {bad} non-finite (NaN or infinite) values out of {out.size}")
    if not allow_constant and float(out.max()) == float(out.min()):
        raise ValueError(f"{name} is constant (every voxel is {float(out.flat[0])!r}): "
                         "expected a map with structure")
    return out


def check_same_shape(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic], *,
                     names: tuple[str, str]) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape (nz, ny, nx): "
                         f"{names[0]}.shape = {a.shape} vs {names[1]}.shape = {b.shape}")


def check_mask(mask: object, shape: tuple[int, ...], *, name: str = "mask") -> npt.NDArray[np.float32]:
    """Return a soft mask as float32 after checking its shape and range [0, 1].

    Raises
    ------
    ValueError
        Wrong shape, values outside [0, 1] (beyond float32 rounding) or all zero.
    """
    m = check_volume(mask, name=name, allow_constant=True)
    if m.shape != tuple(shape):
        raise ValueError(f"{name} must have the shape of the half-maps {tuple(shape)}, got {m.shape}")
    lo, hi = float(m.min()), float(m.max())
    tol = 1e-5  # float32 rounding of masks written as 0/1 in other programs
    if lo < -tol or hi > 1 + tol:
        raise ValueError(f"{name} values must lie in [0, 1], found min {lo:.6g} and max {hi:.6g}")
    if hi <= 0:
        raise ValueError(f"{name} is all zero: expected a soft mask with some voxels > 0")
    return np.clip(m, 0.0, 1.0)


def check_positive(value: object, *, name: str) -> float:
    """Return ``value`` as a float after checking that it is finite and > 0."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


@dataclass(frozen=True)
class PairScale:
    """The level and common scale that bring two half-maps to a standard range inside the engine.

    The engine removes each half's mean (the solvent level: a constant carries no structure,
    and must not change the FSC, the local statistics or the weights) and divides both halves by
    one power of two near their spread. Products of powers then stay well inside float32's range
    whatever the input's scale (1e-12 or 1e12), a power of two rescales without rounding, and
    outputs get the scale and the means back.

    Attributes
    ----------
    offsets : tuple of float
        Mean of half 1 and of half 2.
    scale : float
        Common power of two the mean-free halves were divided by.
    """

    offsets: tuple[float, float]
    scale: float

    def normalise_spectrum(self, spectrum: npt.NDArray[np.complex64], *,
                           remove_mean: bool = True) -> npt.NDArray[np.complex64]:
        """Divide an rfft spectrum of a half by the scale, in place; ``remove_mean`` zeroes its DC term."""
        spectrum *= np.float32(1.0 / self.scale)
        if remove_mean:
            spectrum[(0,) * spectrum.ndim] = 0
        return spectrum

    def restore(self, half1: npt.NDArray[np.float32], half2: npt.NDArray[np.float32],
                full: npt.NDArray[np.float32]) -> None:
        """Give filtered outputs their scale and mean back, in place (the full map gets the mean of both)."""
        full_offset = 0.5 * (self.offsets[0] + self.offsets[1])
        for out, offset in ((half1, self.offsets[0]), (half2, self.offsets[1]), (full, full_offset)):
            out *= np.float32(self.scale)
            out += np.float32(offset)


def pair_scale(half1: npt.NDArray[np.float32], half2: npt.NDArray[np.float32]) -> PairScale:
    """Means of two half-maps and the power of two that brings their common spread near 1.

    Statistics are taken in float64 without temporaries the size of the maps.

    Raises
    ------
    ValueError
        The values spread over less than 1e-25 or more than 1e25 about their mean.
    """
    offsets = (float(np.mean(half1, dtype=np.float64)), float(np.mean(half2, dtype=np.float64)))
    span = max(max(float(h.max()) - m, m - float(h.min())) for h, m in zip((half1, half2), offsets, strict=True))
    if not _VALUE_SPAN[0] <= span <= _VALUE_SPAN[1]:
        raise ValueError(f"half1 and half2 values spread {span:.3g} about their means: expected between "
                         f"{_VALUE_SPAN[0]:g} and {_VALUE_SPAN[1]:g} (rescale the maps)")
    return PairScale(offsets=offsets, scale=math.ldexp(1.0, math.frexp(span)[1]))
