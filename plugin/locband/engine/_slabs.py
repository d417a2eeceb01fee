"""Work over slabs of z-planes, on the filter's threads.

Volume-sized NumPy work (products, weights, interpolation, the passes of a transform that run
along x and y) is done a slab of planes at a time: a slab of about a mebibyte stays in the
cache while a dozen operations run over it, temporaries are slab-sized instead of volume-sized
(no page faults on fresh full-size buffers), and slabs are independent, so the filter's threads
each take their share (NumPy and the FFTs release the GIL). Slab boundaries do not depend on
the number of threads, so results are the same for any thread count.

On a GPU the whole volume is one slab: the device parallelises every operation by itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from locband.engine import _device

__all__ = ["slab_rows", "run", "row_slabs"]

#: elements per slab on the host: 2^18 float32 values (1 MiB), so that a slab and the
#: temporaries of a dozen operations stay in the per-core caches. Measured (CPU-s of a 256^3 filter,
#: 1 thread, best of 2 on the shared machine, +-10 %): 2^14 2.6, 2^16 2.9, 2^18 2.6, 2^20 3.0,
#: 2^22 3.2, the whole volume at once 4.4
_SLAB_ELEMENTS = 1 << 18

_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def slab_rows(n_rows: int, row_elements: int, xp: Any) -> int:
    """Planes per slab for a volume of ``n_rows`` planes of ``row_elements`` each."""
    if not _device.is_host(xp):
        return max(1, n_rows)
    return max(1, min(n_rows, _SLAB_ELEMENTS // max(1, row_elements)))


def row_slabs(n_rows: int, rows: int) -> list[tuple[int, int]]:
    """``[(z0, z1), ...]`` covering ``0..n_rows`` in steps of ``rows``."""
    return [(z0, min(n_rows, z0 + rows)) for z0 in range(0, n_rows, rows)]


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="locband")
        return pool


def run(fn: Callable[[int, int], None], n_rows: int, *, rows: int, workers: int) -> None:
    """Call ``fn(z0, z1)`` for every slab of ``rows`` planes, on ``workers`` threads.

    The calls must touch disjoint parts of their outputs. An exception in any call is raised
    here (after the calls already running have finished).
    """
    slabs = row_slabs(n_rows, rows)
    if workers <= 1 or len(slabs) <= 1:
        for z0, z1 in slabs:
            fn(z0, z1)
        return
    futures = [_pool(workers).submit(fn, z0, z1) for z0, z1 in slabs]
    error: BaseException | None = None
    for fut in futures:
        try:
            fut.result()
        except BaseException as exc:  # keep waiting for the others, then raise the first
            error = error or exc
    if error is not None:
        raise error
