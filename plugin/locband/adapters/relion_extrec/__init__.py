"""RELION ``--external_reconstruct`` hook: the two half references of every iteration, locally weighted.

relion_refine calls ``$RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE <root>_external_reconstruct.star``
once per half set, class/body and iteration, from the project directory, and reads back the map
named in the STAR file. Both half-set calls of an iteration run at the same time (MPI ranks 1
and 2), each with only its own half's Fourier sums. Here each call:

1. reads the STAR file and its arrays and reconstructs its half **without** the tau2 prior
   (RELION's normalisation, :func:`locband.engine.reconstruct.reconstruct_from_sums`);
2. publishes that map in a rendezvous folder and waits for the other half's (see
   :class:`Rendezvous`);
3. filters the pair jointly (:class:`locband.engine.local.LocalFilter`) and writes its own
   locally weighted half, ``result.half1`` or ``result.half2``, to ``rlnExtReconsResult``
   atomically, then exits 0.

Why the unregularised halves: RELION's MAP map is already Wiener-weighted by the global FSC
(``tau2 = T FSC/(1-FSC) sigma2``); filtering it again would weight twice. The local weight
``S/(S+N)`` replaces the global one; where the SNR is the same everywhere it equals the FSC, so
the result equals RELION's own MAP map there, and it is lower where the particle is weaker.

Cases (see the README section "RELION refinement hook"):

* half-set calls (``_half1``/``_half2``, also per body in multi-body): filtered jointly;
* the final joined call of an auto-refine (no ``_half``, non-zero FSC): RELION's plain MAP
  reconstruction, or with ``--final filter`` the locally weighted average of the last pair of
  unregularised halves;
* classification (several classes, no halves) and runs without split halves (FSC all zero):
  the plain MAP reconstruction and one log line; there is no second half to estimate noise from;
* ``--sequential_halves_recons`` on the command line of the calling relion_refine_mpi: the
  halves never run together, so a joint filter cannot exist; the call fails at once with a
  message saying to remove that option (see :func:`detect_sequential` for RELION's code).

The gold-standard FSC RELION uses for its resolution is computed by RELION from the raw
half-set sums before the hook is called; this hook never writes
``<root>_external_reconstruct_out.star`` (and removes a stale one left by another program), so
the FSC, tau2 and the resolution schedule stay RELION's own.
"""


from locband.adapters.relion_extrec.call import check_outputs, run, run_call
from locband.adapters.relion_extrec.rendezvous import Rendezvous, partner_path, report_failure
from locband.adapters.relion_extrec.request import (
    ExtRecRequest,
    HookOptions,
    build_request,
    detect_sequential,
    relion_ancestor,
)
from locband.io.relion_metadata import SEQUENTIAL_FLAG
from locband.io.relion_rendezvous import HOOK_LOG_NAME, RENDEZVOUS_DIR

__all__ = ["HookOptions", "ExtRecRequest", "Rendezvous", "build_request", "check_outputs", "detect_sequential",
           "partner_path", "relion_ancestor", "report_failure", "run", "run_call", "HOOK_LOG_NAME", "RENDEZVOUS_DIR",
           "SEQUENTIAL_FLAG"]
