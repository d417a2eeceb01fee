"""RELION --external_reconstruct hook: locally weight both half references of every iteration.

relion_refine calls this with <root>_external_reconstruct.star (set the program with
RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE; the wrapper wrappers/locband-relion-reconstruct runs
this subcommand). Each half-set call reconstructs its half without RELION's tau2 prior, waits for
the other half (the two calls run at the same time on MPI ranks 1 and 2), filters the pair
jointly and writes its own locally weighted half where RELION reads it. The final joined call,
classification and non-split runs get RELION's plain MAP reconstruction (one log line).
One line per call goes to stdout (RELION's run.out), a JSON record to <job>/locband_extrec.jsonl,
errors to stderr (run.err) with exit code 1. RELION's FSC is never rewritten.

Examples:
  export RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE=/opt/locband/wrappers/locband-relion-reconstruct
  mpirun -n 3 -x RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE relion_refine_mpi --auto_refine ... --external_reconstruct
  # options go into the variable (RELION runs it through sh -c):
  export RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE="/opt/locband/wrappers/locband-relion-reconstruct --threads 4"
  # by hand, on the files of one call:
  locband relion-reconstruct Refine3D/job012/run_it004_half1_class001_external_reconstruct.star
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from locband.commands._common import add_common_filter_args, params_from_args
from locband.io.errors import InputFileError

__all__ = ["add_args", "request_from_args", "run"]


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``locband relion-reconstruct``."""
    parser.add_argument("star", help="<root>_external_reconstruct.star written by relion_refine")
    parser.add_argument("--mask", default=None,
                        help="solvent mask (MRC) for the masked FSC in the log and --apply-mask "
                             "(default: rlnSolventMaskName of the previous optimiser.star, else job.star fn_mask)")
    parser.add_argument("--pixel-size", type=float, default=None, metavar="A",
                        help="voxel size in Å (default: the STAR file (RELION 4+), else the previous model.star)")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                        help="longest wait in seconds for the other half-set call (default 1800)")
    parser.add_argument("--final", choices=("plain", "filter"), default="plain",
                        help="final joined iteration: RELION's plain MAP reconstruction (default), or the locally "
                             "weighted average of the last pair of half maps")
    add_common_filter_args(parser)


def request_from_args(args: argparse.Namespace) -> Any:
    """Translate the parsed options into an :class:`~locband.adapters.relion_extrec.ExtRecRequest`."""
    from locband.adapters import relion_extrec

    if args.pixel_size is not None and not args.pixel_size > 0:
        raise InputFileError(f"--pixel-size must be > 0 Å, got {args.pixel_size}")
    params = params_from_args(args)
    return relion_extrec.build_request(args.star, pixel_size_angstrom=args.pixel_size, mask=args.mask,
                                       final_mode=args.final, timeout_s=args.timeout, params=params,  # type: ignore[arg-type]
                                       workers=args.threads, backend=args.fft_backend, device=args.device)


def run(args: argparse.Namespace) -> int:
    """Run ``locband relion-reconstruct``."""
    from locband.adapters import relion_extrec

    try:
        req = request_from_args(args)
    except (ValueError, TypeError, OSError) as exc:  # the other half must not wait for us in vain
        relion_extrec.report_failure(args.star, f"{type(exc).__name__}: {exc}")
        raise
    try:
        relion_extrec.run(req, print_line=_print_line)
    except OSError as exc:  # disk full, permissions: a one-line reason for run.err, not a traceback
        name = getattr(exc, "filename", None)
        raise InputFileError(f"{args.star}: {exc.strerror or exc}" + (f" ({name})" if name else "")) from None
    sys.stdout.flush()
    return 0


def _print_line(text: str) -> None:
    """Write one run.out line as a single write.

    Both half calls print at the same moment into outputs that mpirun merges (a joined pair of
    lines was seen once in 21 calls). The whole line, newline included, goes into the buffer in
    one call and out in one flush, so it reaches the pipe in one system call.
    """
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()
