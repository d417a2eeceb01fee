"""Input validation shared by the engine's public functions.

Messages name the parameter, what was expected and what was found, so that adapters can pass
them on unchanged (adding the file name they know about).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["check_volume", "check_same_shape", "check_mask", "check_positive"]


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
