r"""Run locband as a RELION External job (what RELION's fn_exe calls).

RELION calls:  <fn_exe> --o External/jobNNN/ --in_3dref MAP [--in_mask MASK] [--<label> <value>...] --j N
Writes into --o: filtered.mrc, filtered_half1.mrc, filtered_half2.mrc, local_resolution.mrc,
summary.json, report.png, report.pdf, RELION_OUTPUT_NODES.star (3.1 type codes and 4.0/5.0
labels), locband_manifest.json (last) and always one of RELION_JOB_EXIT_SUCCESS /
RELION_JOB_EXIT_FAILURE / RELION_JOB_EXIT_ABORTED (the GUI's Abort button is honoured between
stages; SIGTERM, SIGINT and SIGHUP, e.g. from scancel, end the job with RELION_JOB_EXIT_FAILURE
and exit code 143, 130, 129).

--in_3dref may be a half-map (the other half is found by name, half1 <-> half2) or a Refine3D
job folder (its mask: --in_mask, else the refinement's solvent mask). Job parameters
(paramN_label / paramN_value): half1, half2, angpix, band_ratio, window_wavelengths,
noise_threshold, criterion, apply_mask, band_snr, fft_backend, report.
Unknown options are reported in run.out and otherwise ignored.

Examples:
  locband relion-external --o External/job012/ --in_3dref Refine3D/job010/run_half1_class001_unfil.mrc \
      --in_mask MaskCreate/job011/mask.mrc --criterion 0.143 --j 4
  locband relion-external --o External/job013/ --in_3dref Refine3D/job010/ --apply_mask yes --j 2
  (in RELION: fn_exe = "locband relion-external", or the path of wrappers/locband-relion-external)
"""

from __future__ import annotations

import argparse

from locband.adapters.relion_external import add_relion_external_options
from locband.adapters.relion_external import run as run_external

__all__ = ["add_args", "run"]


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``locband relion-external`` (all taken as text; see the adapter)."""
    add_relion_external_options(parser)
    parser.set_defaults(_accepts_unknown=True)


def run(args: argparse.Namespace) -> int:
    """Run ``locband relion-external`` from the raw tokens (parsing happens inside the job wrapper)."""
    return run_external(_tokens(args))


def _tokens(args: argparse.Namespace) -> list[str]:
    """Rebuild the command line from the namespace, so that the adapter parses it under its exit-file guard."""
    from locband.adapters.relion_external import OPTION_TABLE

    tokens: list[str] = []
    for dest in ("o", "in_3dref", "in_mask", "j", "pipeline_control", "in_movies", "in_mics", "in_parts", "in_coords"):
        value = getattr(args, dest, None)
        if value is not None:
            tokens += [f"--{dest}"] + ([value] if value != "" else [])
    for label in OPTION_TABLE:
        value = getattr(args, f"param_{label}", None)
        if value is not None:
            tokens += [f"--{label}"] + ([value] if value != "" else [])
    return tokens + list(getattr(args, "_extra", []))
