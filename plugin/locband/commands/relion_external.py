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
noise_threshold, criterion, apply_mask, band_snr, fft_backend, device, report, and
interpretation (yes: also denoised.mrc, the interpretation map of `locband denoise`, registered
as a map node: for model building and viewing only, never a refinement reference; with its
halves, denoised_summary.json and denoised_report.pdf) with its settings molecular_mass_kda,
bfactor, sharpen, sharpen_from, positivity, solvent_flattening, connectivity, consistency,
linear_weights, cycles. Unknown options are reported in run.out and otherwise ignored.

Examples
--------
  locband relion-external --o External/job012/ --in_3dref Refine3D/job010/run_half1_class001_unfil.mrc \
      --in_mask MaskCreate/job011/mask.mrc --criterion 0.143 --j 4
  locband relion-external --o External/job013/ --in_3dref Refine3D/job010/ --apply_mask yes --j 2
  locband relion-external --o External/job014/ --in_3dref Refine3D/job010/ --interpretation yes \
      --molecular_mass_kda 450 --j 4
  (in RELION: fn_exe = "locband relion-external", or the path of wrappers/locband-relion-external)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from locband.adapters.relion_external import ExternalRequest, run_job
from locband.errors import OptionError
from locband.options import DENOISE, ENGINE, INTERPRETATION, PIXEL_SIZE, REPORT, DenoiseSettings, EngineSettings, Option

__all__ = ["ACCEPTS_UNKNOWN", "RELION_ARGUMENTS", "PARAMETERS", "ALIASES", "add_args", "request_from_args",
           "parse_argv", "run"]

#: RELION adds options of its own (--pipeline_control) and the user's "additional arguments"
ACCEPTS_UNKNOWN = True

#: what RELION passes itself (``RelionJob::getCommandsExternalJob``); all taken as text and
#: converted by :func:`request_from_args`, so that nothing fails before the exit files can be written
_THREADS = Option("j", "count", "the most threads to use (the job's nr_threads; fewer when cores are busy)",
                  metavar="N")
RELION_ARGUMENTS: tuple[Option, ...] = (
    Option("o", "path", "output folder (External/jobNNN/)", metavar="DIR"),
    Option("in_3dref", "path", "a half-map (run_half1_class001_unfil.mrc) or a Refine3D job folder", metavar="MAP"),
    Option("in_mask", "path", "soft mask (MRC)", metavar="MASK"),
    _THREADS,
    Option("pipeline_control", "path", "accepted and ignored (the exit files go to --o)", metavar="DIR"),
)
#: inputs an External job may be given that locband does not use (noted in run.out)
_IGNORED_INPUTS = ("in_movies", "in_mics", "in_parts", "in_coords")

#: job parameters (paramN_label / paramN_value in the GUI): label -> option
PARAMETERS: dict[str, Option] = {
    "half1": Option("half1", "path", "half-map 1 (overrides --in_3dref)", metavar="MRC"),
    "half2": Option("half2", "path", "half-map 2 (default: found by name from half 1)", metavar="MRC"),
    "angpix": PIXEL_SIZE,
    **{o.name: o for o in ENGINE if o.name != "threads"},  # threads: RELION's own --j
    "report": REPORT,
    "interpretation": INTERPRETATION,
    **{o.name: o for o in DENOISE},
}
#: other spellings of a label (besides the label with dashes)
ALIASES: dict[str, tuple[str, ...]] = {"angpix": ("pixel_size",), "pipeline_control": ("pipeline-control",)}
_METAVARS = {"switch": "yes|no", "switch-off": "yes|no", "path": "MRC", "positive": "A", "number": "X"}


def _flags(label: str) -> list[str]:
    names = (label, *ALIASES.get(label, ()))
    return [f"--{n}" for n in names] + [f"--{n.replace('_', '-')}" for n in names if "_" in n]


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register every option the External job understands, all as text (see :func:`request_from_args`)."""
    parser.allow_abbrev = False  # a user label must never be taken for the prefix of another
    text: dict[str, Any] = {"nargs": "?", "const": "", "default": None}
    g = parser.add_argument_group("passed by RELION")
    for o in RELION_ARGUMENTS:
        flags = [f"--{o.name}", *(f"--{a}" for a in ALIASES.get(o.name, ()))]
        g.add_argument(*flags, dest=o.name, metavar=o.metavar, help=o.help, **text)
    for name in _IGNORED_INPUTS:
        g.add_argument(f"--{name}", dest=name, help=argparse.SUPPRESS, **text)
    p = parser.add_argument_group("job parameters (paramN_label / paramN_value in the GUI)")
    for label, o in PARAMETERS.items():
        metavar = "|".join(o.choices) if o.choices else _METAVARS.get(o.kind, "X")
        p.add_argument(*_flags(label), dest=f"param_{label}", metavar=metavar, help=o.help_text().replace("%", "%%"),
                       **text)


def request_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> ExternalRequest:
    """Translate the parsed (text) options into an :class:`ExternalRequest`; pure.

    Unknown options (``extra``) and unused RELION inputs are kept in ``ignored``, never fatal.

    Raises
    ------
    OptionError
        A missing ``--o``, or a value that is not of the expected kind or range (named).
    """
    if not args.o:
        raise OptionError("--o OUTPUT_FOLDER is required (RELION passes --o External/jobNNN/)")
    values = {o.name: o.parse_text(raw, called=f"job parameter --{label}")
              for label, o in PARAMETERS.items() if (raw := getattr(args, f"param_{label}")) is not None}
    max_threads = _THREADS.parse_text(args.j, called="--j (number of threads)") if args.j is not None else None
    try:
        engine = EngineSettings.from_values(values)
    except ValueError as exc:
        raise OptionError(f"job parameter out of range: {exc}") from None
    ignored = [f"--{n} {getattr(args, n)}" for n in _IGNORED_INPUTS if getattr(args, n) is not None]
    called = {o.name: f"job parameter --{label}" for label, o in PARAMETERS.items()}
    interpretation = DenoiseSettings.when_asked(values, called=called)
    return ExternalRequest(out_dir=str(args.o), in_3dref=args.in_3dref or None, half1=values.get("half1"),
                           half2=values.get("half2"), mask=args.in_mask or None,
                           pixel_size_angstrom=values.get("pixel_size"), engine=engine, max_threads=max_threads,
                           report=values.get("report", True), pipeline_control=args.pipeline_control,
                           ignored=(*ignored, *extra), interpretation=interpretation)


def parse_argv(argv: Sequence[str]) -> ExternalRequest:
    """An External job command line (without the program) as a request.

    The same path as the command line: this command's parser, then :func:`request_from_args`.
    """
    parser = argparse.ArgumentParser(prog="locband relion-external", add_help=False, allow_abbrev=False)
    add_args(parser)
    args, extra = parser.parse_known_args(list(argv))
    return request_from_args(args, extra)


def run(args: argparse.Namespace, extra: Sequence[str] = ()) -> int:
    """Run ``locband relion-external``.

    The request is read inside the job, so that even a bad option ends with
    ``RELION_JOB_EXIT_FAILURE`` in ``--o``.
    """
    if not args.o:
        raise OptionError("--o OUTPUT_FOLDER is required (RELION passes --o External/jobNNN/)")
    return run_job(str(args.o), lambda: request_from_args(args, extra), stdout=sys.stdout, stderr=sys.stderr)
