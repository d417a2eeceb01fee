"""RELION --external_reconstruct hook: locally weight both half references of every iteration.

relion_refine calls this with <root>_external_reconstruct.star (set the program with
RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE; the wrapper wrappers/locband-relion-reconstruct runs
this subcommand). Each half-set call reconstructs its half without RELION's tau2 prior, waits for
the other half (the two calls run at the same time on MPI ranks 1 and 2), filters the pair
jointly and writes its own locally weighted half where RELION reads it. The final joined call,
classification and non-split runs get RELION's plain MAP reconstruction (one log line).
One line per call goes to stdout (RELION's run.out), a JSON record to <job>/locband_extrec.jsonl,
errors to stderr (run.err) with exit code 1. RELION's FSC is never rewritten.

Examples
--------
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
from collections.abc import Sequence

from locband.adapters import relion_extrec as hook
from locband.commands._common import add_engine_arguments, engine_from_args
from locband.options import MASK, PIXEL_SIZE, Option, add_arguments, values_from_namespace

__all__ = ["OPTIONS", "add_args", "request_from_args", "run"]

#: the hook's options besides the engine's (they go into RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE)
OPTIONS = (
    Option("star", "path", "<root>_external_reconstruct.star written by relion_refine", flag="", metavar="STAR",
           required=True),
    Option("mask", "path", "solvent mask (MRC) for the masked FSC in the log and --apply-mask (default: "
           "rlnSolventMaskName of the previous optimiser.star, else job.star fn_mask)", MASK.label, metavar="MASK"),
    Option("pixel_size", "positive", "voxel size in Å (default: the STAR file (RELION 4+), else the previous "
           "model.star)", PIXEL_SIZE.label, metavar="A", unit="Å"),
    Option("timeout", "positive", "longest wait in seconds for the other half-set call", default=1800.0,
           metavar="S", unit="seconds"),
    Option("final", "choice", "final joined iteration: RELION's plain MAP reconstruction, or the locally weighted "
           "average of the last pair of half maps", default="plain", choices=("plain", "filter")),
)


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``locband relion-reconstruct``."""
    add_arguments(parser, OPTIONS)
    add_engine_arguments(parser)


def request_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> hook.HookOptions:
    """The parsed options as the hook's request (pure: the STAR file is read by the adapter).

    Raises
    ------
    OptionError
        A value out of range, named.
    """
    v = values_from_namespace(args, OPTIONS)
    return hook.HookOptions(star=v["star"], mask=v["mask"], pixel_size_angstrom=v["pixel_size"],
                            timeout_s=v["timeout"], final_mode=v["final"], engine=engine_from_args(args))


def run(args: argparse.Namespace, extra: Sequence[str] = ()) -> int:
    """Run ``locband relion-reconstruct``."""
    try:
        options = request_from_args(args, extra)
    except (ValueError, TypeError) as exc:  # the other half must not wait for us in vain
        hook.report_failure(args.star, f"{type(exc).__name__}: {exc}")
        raise
    hook.run_call(options, print_line=_print_line)
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
