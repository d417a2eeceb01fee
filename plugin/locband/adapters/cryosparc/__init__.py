"""cryoSPARC adapter: an External job around the engine, an offline mode, and a refinement loop.

Three entry points, all through the official ``cryosparc-tools`` client (an optional extra,
imported where it is used):

* :func:`run_filter_job` (:mod:`.online`): a refinement's half-maps filtered in a new External
  job connected to its volume output;
* :func:`filter_offline` (:mod:`.offline`): the same outputs from a job folder (or its volume
  ``.cs``), written all-or-nothing into a new folder with a volume ``.cs`` and ``.csg`` for
  *Import Result Group*;
* :func:`run_loop` (:mod:`.loop`): refinement -> filter -> local refinement seeded with the
  filtered volume -> filter ..., recorded step by step in a JSON state file so that a re-run
  resumes.

:mod:`.common` holds the requests (built by :mod:`locband.commands.cryosparc`), the slots and
their checks; :mod:`.session` the connection (credentials from the environment or a saved login,
never from the command line).
"""

from locband.adapters.cryosparc.common import (
    DENOISED_OUTPUT_NAME,
    DENOISED_SLOT_KINDS,
    HALF_SLOTS,
    INPUT_NAME,
    OUTPUT_NAME,
    OUTPUT_SLOTS,
    FilterRequest,
    LoopRequest,
    OfflineRequest,
    build_output_fields,
    check_volume_record,
    choose_mask_slot,
    output_slot_specs,
)
from locband.adapters.cryosparc.loop import loop_decision, run_loop
from locband.adapters.cryosparc.offline import filter_offline
from locband.adapters.cryosparc.online import run_filter_job
from locband.adapters.cryosparc.session import connect, disconnect

__all__ = ["DENOISED_OUTPUT_NAME", "DENOISED_SLOT_KINDS",
           "HALF_SLOTS", "INPUT_NAME", "OUTPUT_NAME", "OUTPUT_SLOTS", "FilterRequest", "LoopRequest", "OfflineRequest",
           "build_output_fields", "check_volume_record", "choose_mask_slot", "connect", "disconnect", "filter_offline",
           "loop_decision", "output_slot_specs", "run_filter_job", "run_loop"]
