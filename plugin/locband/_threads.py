"""How many threads to use by default: the cores this process may run on that are idle now.

One rule for every command and host adapter (``locband filter``, the RELION hook and External
job, cryoSPARC, the loop API); the engine itself takes an explicit thread count.

The rule (:func:`default_threads`)::

    allowed = len(os.sched_getaffinity(0))          # CPUs this process may run on
    busy    = load1 * allowed / os.cpu_count()      # their share of the 1-minute load average
    threads = round(allowed - busy), divided among `concurrent` filters, within [1, allowed]

* **Idle, not all.** Threads that have to share a core with another busy process gain nothing
  (128^3 beside two busy processes on two cores: 0.75-0.89 s with 2 threads, 0.81-0.92 s with 1),
  and FFTW's threads, which spin while they wait, lose up to an order of magnitude (the engine
  before, all FFTs by FFTW: 8-20 s against 0.8-1.1 s; ``backend="pyfftw"`` now: 0.7-3.1 s
  against 0.5 s). Taking only the idle cores uses a quiet workstation fully and
  leaves a node busy with RELION ranks (MPI ranks that wait also spin and count as load) at one
  thread.
* **Rounding.** To the nearest integer: a core busy less than half of the time (desktop,
  daemons) counts as idle, one busy more than half of the time does not.
* **Affinity.** The load average is machine-wide. When a batch system or ``taskset`` confines
  the process to some of the CPUs, it is assumed to be spread over all of them, so those CPUs
  carry their share of it. That is conservative where the other jobs are confined to other
  cores (a cgroup cpuset of its own): pass ``--threads`` there to use every core granted.
* **This process's own load.** Commands ask once, as they start, when their own share of the
  1-minute average is negligible (every CPU-second adds at most 1/60 to it). A script that has
  kept cores busy during the last minute counts that work as load and gets fewer threads:
  pass ``workers=`` there.
* **Hyperthreads** count as CPUs, as they do in the affinity mask and in the load average (a
  runnable task occupies one logical CPU). The filter's transforms and products are limited by
  memory bandwidth, so a sibling thread adds little but costs little either.
* **Concurrent filters.** The RELION hook filters the same pair in both half-set calls at the
  same time (ranks 1 and 2), so each call takes half of the idle cores (``concurrent=2``).
"""

from __future__ import annotations

import math
import os

__all__ = ["default_threads"]


def _allowed_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _load_1min() -> float:
    try:
        return max(0.0, float(os.getloadavg()[0]))
    except (AttributeError, OSError):  # no load average on this system: assume idle
        return 0.0


def default_threads(*, limit: int | None = None, concurrent: int = 1) -> int:
    """Threads for one filter: the idle CPUs this process may run on, at least 1.

    Parameters
    ----------
    limit : int, optional
        Never more than this (for example RELION's ``--j``, the threads a job was given).
    concurrent : int
        How many filters start at the same time on this machine and share the idle CPUs.

    Returns
    -------
    int
        ``round(allowed - load1 * allowed / cpu_count) // concurrent``, within ``[1, limit]``;
        see the module notes for the reasons.
    """
    allowed = _allowed_cpus()
    total = max(allowed, os.cpu_count() or allowed)
    idle = allowed - _load_1min() * allowed / total
    n = math.floor(idle + 0.5) // max(1, int(concurrent))
    n = min(n, allowed)
    if limit is not None:
        n = min(n, int(limit))
    return max(1, n)
