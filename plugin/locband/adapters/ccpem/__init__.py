"""CCP-EM pipeliner (Doppio) jobs: locband beside LAFTER and LocScale.

The CCP-EM pipeliner (``pip install 'locband[ccpem]'``) finds job classes through the
``ccpem_pipeliner.jobs`` entry-point group (``pyproject.toml``); Doppio, the ``pipeliner``
command line and automated pipelines then offer them as they offer the pipeliner's own
``lafter.postprocess.local_denoising`` and ``locscale.postprocess.local_sharpening``.

Each job is thin: it declares its options, checks them, and returns the ``locband <subcommand>``
command line that the pipeliner's job runner executes in the project folder, writing into the
job folder (``LocBand/jobNNN/``). After the run it describes the results for the GUI (summary
table, global FSC, local-resolution histogram, map slices, 3D viewer, the PNG report). A job is
one small subclass of :class:`LocbandJob`: a process name, a subcommand, an option table and an
output table.

Two jobs: ``locband.postprocess.local_filter`` (``locband filter``) and
``locband.postprocess.local_denoising`` (``locband denoise``, the interpretation map: for model
building and viewing only, never a refinement reference; its table :data:`DENOISE_OPTIONS` holds
the interpretation map's settings of :data:`locband.options.DENOISE`, the engine settings that
apply to it, and the files, report and threads as below).

The option table of ``locband.postprocess.local_filter`` (:data:`FILTER_OPTIONS`) is derived from
locband's own (:mod:`locband.options`): the half-maps, mask and voxel size, every engine setting
under its own name (defaults those of :class:`~locband.engine.params.FilterParams`), ``report``
(``--no-report`` when No) and the pipeliner's own ``nr_threads`` (``--threads``). The job always
adds ``--out-dir <job folder>`` and ``--quiet`` (no progress lines in run.err).
"""

from locband.adapters.ccpem.fields import (
    DENOISE_OPTIONS,
    DENOISE_OUTPUTS,
    FILTER_OPTIONS,
    FILTER_OUTPUTS,
    JobField,
    Output,
    build_arguments,
    params_from_values,
)
from locband.adapters.ccpem.job import LocbandDenoiseJob, LocbandFilterJob, LocbandJob, locband_executable

__all__ = ["JobField", "Output", "FILTER_OPTIONS", "FILTER_OUTPUTS", "DENOISE_OPTIONS", "DENOISE_OUTPUTS", "LocbandJob",
           "LocbandFilterJob", "LocbandDenoiseJob", "build_arguments", "locband_executable", "params_from_values"]
