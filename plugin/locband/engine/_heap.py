"""Giving the C heap's free memory back to the system between the engine's phases (:func:`trim_heap`)."""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["trim_heap"]


def trim_heap() -> None:
    """Return the C heap's free memory to the system, where the C library can (glibc's malloc_trim).

    Arrays under 32 MiB come from the heap; after the many medium-sized temporaries of the
    cropped bands it keeps about 200 MiB free at 512^3, which would add to the peak of the
    full-size phase. Elsewhere (no glibc) this does nothing.
    """
    trim = _MALLOC_TRIM[0]
    if trim is not None:
        trim(0)


def _find_malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM: list[Any] = [_find_malloc_trim()]
