"""A stand-in for CuPy that runs on NumPy but keeps "device" arrays apart from host arrays.

``FakeDeviceArray`` wraps a NumPy array and behaves like a CuPy array where it matters for
catching host/device mixing without a GPU:

* turning it into a NumPy array implicitly (``np.asarray(a)``, ``np.array(a)``, a NumPy
  function that would need it on the host) raises ``TypeError``, as CuPy does; ``a.get()`` is
  the explicit way, as in CuPy;
* an operation that mixes it with a NumPy array (of any dimension) raises ``TypeError``, as
  CuPy does; Python and NumPy scalars are fine, as in CuPy;
* NumPy functions called on it (``np.stack(...)``) raise instead of silently computing on
  the host: the engine must use the namespace.

The module-like :data:`namespace` offers what the engine takes from ``cupy``: array creation,
the ufuncs, ``where``/``take``/``clip``/``stack``/``bincount``, ``fft`` (numpy.fft-style
signatures computed by ``scipy.fft``, which keeps float32) and ``cuda.runtime.getDeviceCount``.
:data:`transfers` counts explicit host -> device copies, :data:`gets` device -> host ones.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import numpy.lib.mixins
import scipy.fft

transfers = {"to_device": 0, "to_host": 0}


class HostDeviceMixError(TypeError):
    """A host NumPy array met a device array (CuPy raises TypeError here)."""


def _unwrap(x: Any, what: str) -> Any:
    if isinstance(x, FakeDeviceArray):
        return x._a
    if isinstance(x, np.ndarray):
        raise HostDeviceMixError(f"{what}: a host numpy.ndarray {x.shape} {x.dtype} met a device array "
                                 "(CuPy refuses this: move it with xp.asarray first)")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, what) for v in x)
    if isinstance(x, slice):
        return x
    return x


def _wrap(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return FakeDeviceArray(x)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


class FakeDeviceArray(numpy.lib.mixins.NDArrayOperatorsMixin):
    """An array "on the device" (see the module notes)."""

    __slots__ = ("_a",)

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    # -- what CuPy refuses --------------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
                        "a NumPy array explicitly. (fake CuPy)")

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(f"numpy.{func.__name__} called on a device array: use the array namespace (fake CuPy)")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        name = f"numpy.{ufunc.__name__}"
        raw = [_unwrap(x, name) for x in inputs]
        if "where" in kwargs:  # CuPy's ufuncs take no where=
            raise TypeError("where= is not supported by CuPy ufuncs (fake CuPy)")
        out = kwargs.pop("out", None)
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o, name + "(out=)") for o in out)
        res = getattr(ufunc, method)(*raw, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(res)

    def __array_namespace__(self, api_version: Any = None) -> Any:
        return namespace

    # -- the array protocol the engine uses ---------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    ndim = property(lambda self: self._a.ndim)
    real = property(lambda self: FakeDeviceArray(self._a.real))
    imag = property(lambda self: FakeDeviceArray(self._a.imag))

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        raise TypeError("iterating over a device array (element by element transfers): not in the engine")

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._a[_unwrap(key, "indexing")])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_unwrap(key, "indexing")] = _unwrap(value, "assignment")

    def __float__(self) -> float:  # CuPy allows this (a synchronising copy of one value)
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __repr__(self) -> str:
        return f"FakeDeviceArray({self._a!r})"

    def get(self) -> np.ndarray:
        transfers["to_host"] += 1
        return self._a.copy()

    def view(self, dtype: Any) -> FakeDeviceArray:
        return FakeDeviceArray(self._a.view(dtype))

    def astype(self, dtype: Any, copy: bool = True) -> FakeDeviceArray:
        return FakeDeviceArray(self._a.astype(dtype, copy=copy))

    def copy(self) -> FakeDeviceArray:
        return FakeDeviceArray(self._a.copy())

    def fill(self, value: Any) -> None:
        self._a.fill(value)

    def ravel(self) -> FakeDeviceArray:
        return FakeDeviceArray(self._a.ravel())

    def reshape(self, *shape: Any) -> FakeDeviceArray:
        return FakeDeviceArray(self._a.reshape(*shape))

    def sum(self, *args: Any, **kwargs: Any) -> FakeDeviceArray:
        return FakeDeviceArray(np.asarray(self._a.sum(*args, **kwargs)))

    def mean(self, *args: Any, **kwargs: Any) -> FakeDeviceArray:
        return FakeDeviceArray(np.asarray(self._a.mean(*args, **kwargs)))

    def max(self, *args: Any, **kwargs: Any) -> FakeDeviceArray:
        return FakeDeviceArray(np.asarray(self._a.max(*args, **kwargs)))

    def min(self, *args: Any, **kwargs: Any) -> FakeDeviceArray:
        return FakeDeviceArray(np.asarray(self._a.min(*args, **kwargs)))


def _strict(fn: Any, name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raw_args = _unwrap(list(args), name)
        raw_kwargs = {k: _unwrap(v, name) for k, v in kwargs.items()}
        return _wrap(fn(*raw_args, **raw_kwargs))
    call.__name__ = name
    return call


def _asarray(a: Any, dtype: Any = None) -> FakeDeviceArray:
    if isinstance(a, FakeDeviceArray):
        return FakeDeviceArray(a._a if dtype is None else a._a.astype(dtype, copy=False))
    transfers["to_device"] += 1
    return FakeDeviceArray(np.array(a, dtype=dtype))  # a copy, as a transfer makes


def _ufunc(uf: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        if not any(isinstance(a, FakeDeviceArray) for a in args):
            raise HostDeviceMixError(f"{uf.__name__}: no device array among the arguments (CuPy needs one)")
        out = kwargs.get("out")
        res = uf(*args, **kwargs)  # dispatches to FakeDeviceArray.__array_ufunc__ (strict)
        return out if isinstance(out, FakeDeviceArray) else res
    call.__name__ = uf.__name__
    return call


def _fft_fn(name: str) -> Any:
    fn = getattr(scipy.fft, name)

    def call(a: Any, *args: Any, **kwargs: Any) -> FakeDeviceArray:
        if not isinstance(a, FakeDeviceArray):
            raise HostDeviceMixError(f"fft.{name}: the input is not a device array")
        return FakeDeviceArray(np.asarray(fn(a._a, *args, **kwargs)))
    call.__name__ = name
    return call


namespace = types.SimpleNamespace(
    __name__="fake_cupy",
    ndarray=FakeDeviceArray,
    float32=np.float32, float64=np.float64, complex64=np.complex64, intp=np.intp, bool_=np.bool_,
    asarray=_asarray,
    empty=lambda shape, dtype=np.float64: FakeDeviceArray(np.empty(shape, dtype)),
    zeros=lambda shape, dtype=np.float64: FakeDeviceArray(np.zeros(shape, dtype)),
    full=lambda shape, value, dtype=None: FakeDeviceArray(np.full(shape, value, dtype)),
    zeros_like=_strict(np.zeros_like, "zeros_like"),
    ascontiguousarray=_strict(np.ascontiguousarray, "ascontiguousarray"),
    where=_strict(np.where, "where"), take=_strict(np.take, "take"), clip=_strict(np.clip, "clip"),
    stack=_strict(np.stack, "stack"), bincount=_strict(np.bincount, "bincount"),
    fft=types.SimpleNamespace(**{n: _fft_fn(n) for n in ("rfftn", "irfftn", "rfft", "fft", "ifft", "rfft2", "irfft2")}),
    cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1)),
)
for _name in ("multiply", "divide", "add", "subtract", "maximum", "minimum", "sqrt", "square", "exp", "sin", "cos",
              "rint", "conj", "abs"):
    setattr(namespace, _name, _ufunc(getattr(np, _name)))
