"""RELION External job: what RELION passes in, what RELION reads back.

RELION (3.1, 4.0, 5.0) starts an External job as (``RelionJob::getCommandsExternalJob``)::

    <fn_exe> --o External/jobNNN/ [--in_3dref MAP] [--in_mask MASK] [--<label> <value> ...]
             --j <threads> [additional arguments] [--pipeline_control External/jobNNN/]

``--pipeline_control`` is appended only when the command line contains ``relion_``. A job
parameter whose value is left empty arrives as a bare ``--<label>``.

Translation table (each row is tested on its own in ``tests/adapters/test_relion_external.py``):

================================  ==========================================================
RELION argument                   locband
================================  ==========================================================
``--o DIR``                       output folder (created); exit files and node file go there
``--in_3dref MAP|DIR``            a half-map (the other half is found by name: ``half1`` <->
                                  ``half2``) or a Refine3D job folder
                                  (``run_half1_class001_unfil.mrc`` there)
``--in_mask MASK``                soft mask: masked FSC, report histogram, ``apply_mask``
                                  (default with a Refine3D folder: ``rlnSolventMaskName`` of
                                  its last ``run_it*_optimiser.star``, if that file exists)
``--j N``                         the most threads to use (fewer when cores are busy)
``--half1 F`` / ``--half2 F``     name the half-maps explicitly (override ``--in_3dref``)
``--angpix A``                    voxel size in Å (default: MRC header); alias ``pixel_size``
``--band_ratio R``                :attr:`FilterParams.band_ratio`
``--window_wavelengths K``        :attr:`FilterParams.window_wavelengths`
``--noise_threshold Z``           :attr:`FilterParams.noise_threshold`
``--criterion C``                 :attr:`FilterParams.criterion`
``--apply_mask [yes|no]``         :attr:`FilterParams.apply_mask`
``--band_snr [yes|no]``           :attr:`FilterParams.keep_band_snr` (writes band_snr.mrc)
``--fft_backend pyfftw|scipy``    FFT implementation
``--device cpu|cuda``             where the filter runs (``cuda``: a GPU, through CuPy)
``--report [yes|no]``             write report.png / report.pdf (default yes)
``--pipeline_control DIR``        accepted and ignored (the exit files go to ``--o``)
``--in_movies`` ... ``--in_coords`` accepted and ignored, with a note in run.out
anything else                     ignored, with a note in run.out
================================  ==========================================================

Labels may also be written with dashes (``--band-ratio``), as on the ``locband filter`` command line.
The command (:mod:`locband.commands.relion_external`) parses the command line into an
:class:`ExternalRequest`; :mod:`.job` finds the files, runs the filter and writes what RELION
reads, inside the job's lifecycle (:mod:`.lifecycle`: exit files, abort requests, the job log).
"""


from locband.adapters.relion_external.job import (
    NODE_TYPES,
    ExternalRequest,
    HalfMaps,
    build_output_nodes,
    execute,
    other_half,
    resolve_half_maps,
    run_job,
)
from locband.adapters.relion_external.lifecycle import JobControl, relion_job

__all__ = ["ExternalRequest", "HalfMaps", "NODE_TYPES", "JobControl", "build_output_nodes", "execute", "other_half",
           "relion_job", "resolve_half_maps", "run_job"]
