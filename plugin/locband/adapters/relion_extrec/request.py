"""The hook's request: its options and what the refinement's files say, read in one pass.

Where each value comes from (the README section "RELION refinement hook"):

* pixel size: ``--pixel-size``, else ``rlnPixelSize`` of the hook STAR file (RELION 4.0+), else
  the previous iteration's model.star, else 1 Å (local resolution then in voxels);
* mask: ``--mask``, else ``rlnSolventMaskName`` of the previous optimiser.star, else ``fn_mask``
  of the job's job.star, else none;
* ``--sequential_halves_recons``: only the command line of the relion_refine that called
  (:func:`detect_sequential`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from locband.io.procfs import ancestor_commands
from locband.io.relion_metadata import SEQUENTIAL_FLAG, HookContext, read_hook_context, solvent_mask_name
from locband.io.relion_star import ExternalReconstructStar, HookName, parse_hook_name, read_external_reconstruct_star
from locband.options import EngineSettings

__all__ = ["HookOptions", "ExtRecRequest", "build_request", "detect_sequential", "relion_ancestor"]

#: the request's look-ups that have no source: 1 Å, so that the local resolution is in voxels
_UNKNOWN_PIXEL = 1.0


@dataclass(frozen=True)
class HookOptions:
    """What one hook call was asked to do, from its command line (no file looked at yet).

    Attributes
    ----------
    star : str
        ``<root>_external_reconstruct.star``, the only argument relion_refine passes.
    mask : str or None
        Solvent mask; None: looked up in the refinement's files.
    pixel_size_angstrom : float or None
        Voxel size; None: looked up.
    timeout_s : float
        Longest wait for the other half-set call.
    final_mode : str
        ``"plain"`` or ``"filter"`` for the final joined call.
    engine : EngineSettings
        Filter settings, threads and FFT backend.
    """

    star: str
    mask: str | None = None
    pixel_size_angstrom: float | None = None
    timeout_s: float = 1800.0
    final_mode: str = "plain"
    engine: EngineSettings = field(default_factory=EngineSettings)


@dataclass(frozen=True)
class ExtRecRequest:
    """Everything one hook call needs, gathered from the STAR files and options.

    Attributes
    ----------
    star : ExternalReconstructStar
        The hook's STAR file.
    name : HookName
        Iteration, half set, class/body from the file name.
    job_dir : Path
        Folder of the STAR file (relion_refine's output folder).
    pixel_size_angstrom : float
        Voxel size (only for the local resolution in Å).
    pixel_size_source : str
        Where it came from.
    mask_path : str or None
        Solvent mask for the masked FSC (and the output with ``--apply-mask``).
    symmetry : str or None
        Point group (already applied to the sums by RELION; logged only).
    sequential : str or None
        Where ``--sequential_halves_recons`` was seen, or None.
    final_mode : str
        ``"plain"`` or ``"filter"`` for the final joined call.
    timeout_s : float
        Longest wait for the other half.
    engine : EngineSettings
        Filter settings, threads and FFT backend.
    sequential_hint : str or None
        A file of the job that mentions ``--sequential_halves_recons`` (named in the timeout
        message).
    notes : list of str
        What was looked up where (logged).
    """

    star: ExternalReconstructStar
    name: HookName
    job_dir: Path
    pixel_size_angstrom: float
    pixel_size_source: str
    mask_path: str | None
    symmetry: str | None
    sequential: str | None
    final_mode: str
    timeout_s: float
    engine: EngineSettings = field(default_factory=EngineSettings)
    sequential_hint: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def case(self) -> str:
        """``"half"``, ``"final"`` (joined auto-refine result) or ``"single"`` (classification, no halves)."""
        if self.name.half is not None:
            return "half"
        return "final" if np.any(self.star.fsc[1:] != 0) else "single"


def relion_ancestor() -> tuple[int, str] | None:
    """The calling relion_refine process (pid, command line), if it can be found."""
    for pid, cmd in ancestor_commands():
        # the program itself, or a script run by an interpreter (argv[1])
        if any("relion_refine" in Path(tok).name for tok in cmd.split()[:2]):
            return pid, cmd
    return None


def detect_sequential(name: HookName, job_dir: Path, *, ancestors: list[tuple[int, str]] | None = None) -> str | None:
    """Where the calling relion_refine runs with ``--sequential_halves_recons``, or None.

    Only the command line of the relion_refine process that called this hook counts.

    RELION (3.1.3, 4.0 and 5.0 alike) really runs the halves apart with that option: in
    ``MlOptimiserMpi::maximization()`` the rank of half 1 (``2*(i % ((size-1)/2)) + 1``) makes its
    ``externalReconstruct`` call, then ``if (do_sequential_halves_recons)
    MPI_Barrier(MPI_COMM_WORLD);`` holds every rank until that call has returned, and only then
    does the rank of half 2 make its call (3.1.3 ``src/ml_optimiser_mpi.cpp:2064, 2179-2180,
    2216``; 4.0.0 ``:2035, 2139, 2171``; 5.0.0 ``:2447, 2555, 2587``). A hook that waits for the
    other half there waits for a call that cannot start. Measured with RELION 3.1.3 (``mpirun -n
    3``, a hook that sleeps 3 s): with the option the half-2 call started 10 ms after the half-1
    call returned; without it the two started 1 ms apart.

    The option is read from the command line of the running process only
    (``checkParameter(argc, argv, "--sequential_halves_recons")`` in both ``parseInitial`` and
    ``parseContinue``, 3.1.3 ``src/ml_optimiser.cpp:462, 796``): a run continued without it
    reconstructs the halves together again, and the non-MPI relion_refine, which never splits
    the halves (``ml_optimiser.cpp:2541``), ignores it. So the job's files (``note.txt``,
    ``job.star``, an optimiser.star written by an earlier run) are no evidence, and a call made
    by hand (no relion_refine above it) is never refused; :class:`~locband.io.relion_metadata.HookContext`
    names such a file in the timeout message only.
    """
    for pid, cmd in (ancestors if ancestors is not None else ancestor_commands()):
        tokens = cmd.split()
        if any("relion_refine" in Path(tok).name for tok in tokens[:2]) and SEQUENTIAL_FLAG in tokens:
            return f"the command line of relion_refine (pid {pid})"
    return None


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def _mask(options: HookOptions, context: HookContext) -> tuple[str | None, str]:
    """The mask and where it came from."""
    if options.mask is not None:
        return options.mask, "--mask"
    if context.optimiser and (named := solvent_mask_name(context.optimiser)) is not None:
        return named, "optimiser.star rlnSolventMaskName"
    if context.job_options and context.job_options.get("fn_mask"):
        return context.job_options["fn_mask"], "job.star fn_mask"
    return None, ""


def _pixel_size(options: HookOptions, star: ExternalReconstructStar, context: HookContext) -> tuple[float, str]:
    """The voxel size and where it came from."""
    if options.pixel_size_angstrom is not None:
        return float(options.pixel_size_angstrom), "--pixel-size"
    if star.pixel_size_angstrom:
        return float(star.pixel_size_angstrom), "rlnPixelSize of the hook STAR file"
    if context.model and _positive(context.model.get("rlnPixelSize")):
        return float(context.model["rlnPixelSize"]), "previous model.star"
    return _UNKNOWN_PIXEL, "unknown (1 Å assumed: local resolution in voxels)"


def build_request(options: HookOptions) -> ExtRecRequest:
    """Read the hook's STAR file and the job's metadata (one pass) into an :class:`ExtRecRequest`.

    Raises
    ------
    InputFileError
        The STAR file is missing, unreadable or not RELION's.
    """
    name = parse_hook_name(options.star)
    star = read_external_reconstruct_star(options.star)
    job_dir = Path(options.star).parent
    context = read_hook_context(name, job_dir)
    notes = list(context.notes)
    mask, mask_source = _mask(options, context)
    if mask is not None:
        notes.append(f"mask {mask} (from {mask_source})")
    pixel, pixel_source = _pixel_size(options, star, context)
    return ExtRecRequest(star=star, name=name, job_dir=job_dir, pixel_size_angstrom=pixel,
                         pixel_size_source=pixel_source, mask_path=mask, symmetry=context.symmetry,
                         sequential=detect_sequential(name, job_dir) if name.half else None,
                         final_mode=options.final_mode, timeout_s=float(options.timeout_s), engine=options.engine,
                         sequential_hint=context.sequential_hint, notes=tuple(notes))
