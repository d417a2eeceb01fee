"""Where the engine's arrays live: host memory (NumPy) or a CUDA GPU (CuPy).

The engine's array code is written once against an array namespace ``xp`` chosen once per
filter: :mod:`numpy` for ``device="cpu"``, :mod:`cupy` for ``device="cuda"``. CuPy is an
optional dependency (``pip install 'locband[gpu]'``); it is imported only when a GPU is asked
for. Arrays cross between host and device only at the filter's boundary (inputs in, results
out), through :func:`to_device` and :func:`to_host`: CuPy refuses to turn a device array into a
NumPy array implicitly, and so does the fake device the tests run the engine on.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["DEVICES", "DeviceUnavailableError", "GPU_INSTALL_HINT", "namespace", "array_module", "to_host",
           "to_device", "is_host", "Array"]

#: an array of a filter's namespace: numpy.ndarray, or cupy.ndarray on a GPU (CuPy is untyped)
Array = Any

#: the devices a filter can run on
DEVICES = ("cpu", "cuda")

#: what to install for ``device="cuda"``
GPU_INSTALL_HINT = "pip install 'locband[gpu]'"


class DeviceUnavailableError(ValueError):
    """``device="cuda"`` was asked for, but CuPy or a CUDA GPU is missing."""


def _import_cupy() -> Any:
    """Import CuPy (a seam for the tests, which put a fake device namespace here)."""
    import cupy  # the optional extra [gpu]: imported only when a GPU is asked for

    return cupy


def namespace(device: str) -> Any:
    """The array namespace of ``device``: :mod:`numpy` for ``"cpu"``, :mod:`cupy` for ``"cuda"``.

    Raises
    ------
    ValueError
        An unknown device name.
    DeviceUnavailableError
        ``"cuda"`` without CuPy, or without a CUDA GPU that CuPy can use (one line, naming what to
        install).
    """
    if device == "cpu":
        return np
    if device != "cuda":
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    try:
        cp = _import_cupy()
    except ImportError as exc:
        raise DeviceUnavailableError(f"device 'cuda' needs CuPy, which is not installed ({exc}): "
                                     f"{GPU_INSTALL_HINT} (CuPy for CUDA 12, cupy-cuda12x)") from None
    try:
        count = int(cp.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError and friends: no driver, no device
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeviceUnavailableError(f"device 'cuda': CuPy is installed but finds no usable CUDA GPU ({first}); "
                                     "check the NVIDIA driver and CUDA_VISIBLE_DEVICES, or use device 'cpu'") from None
    if count < 1:
        raise DeviceUnavailableError("device 'cuda': CuPy is installed but finds no CUDA GPU "
                                     "(CUDA_VISIBLE_DEVICES empty?); use device 'cpu'")
    return cp


def array_module(a: Any) -> Any:
    """The namespace an array belongs to (:mod:`numpy` for NumPy arrays and Python numbers)."""
    if isinstance(a, (np.ndarray, np.generic, int, float, complex)):
        return np
    cp = sys.modules.get("cupy")
    if cp is not None and isinstance(a, cp.ndarray):
        return cp
    ns = getattr(a, "__array_namespace__", None)  # other array libraries (the tests' fake device)
    if ns is not None:
        return ns()
    return np


def is_host(xp: Any) -> bool:
    """Whether ``xp`` is NumPy (host memory, where work is split over slabs and threads)."""
    return xp is np


def to_host(a: Any) -> npt.NDArray[Any]:
    """A NumPy array with the values of ``a`` (copied from the device when it lives there)."""
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, "get", None)
    if get is None:
        return np.asarray(a)
    out: npt.NDArray[Any] = get()
    return out


def to_device(a: Any, xp: Any) -> Any:
    """``a`` as an array of namespace ``xp`` (copied to the device when ``xp`` is not NumPy)."""
    return a if xp is np else xp.asarray(a)
