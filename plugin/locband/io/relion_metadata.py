"""A RELION refinement's own files around a hook call: the previous iteration and the job's settings.

* :func:`read_model_general`, :func:`read_optimiser_general`, :func:`read_sampling_symmetry`,
  :func:`read_job_options`, :func:`last_optimiser_star`, :func:`solvent_mask_name`: single files;
* :func:`read_hook_context` reads, in one pass, everything a hook call looks up: the previous
  iteration's ``model.star`` (pixel size), ``optimiser.star`` (solvent mask, and the command
  line in its header), ``sampling.star`` (symmetry), the job's ``job.star`` (``fn_mask``), and
  which file mentions ``--sequential_halves_recons``. A file that cannot be read is noted, not
  fatal: the look-up falls back to the next source.

Paths are relative to relion_refine's working directory (the project folder), which is also the
hook's working directory; they are used as they are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from locband.errors import InputFileError
from locband.io.relion_star import HookName
from locband.io.star import as_mapping, read_star

__all__ = ["SEQUENTIAL_FLAG", "HookContext", "read_hook_context", "previous_file", "read_model_general",
           "read_optimiser_general", "last_optimiser_star", "solvent_mask_name", "read_sampling_symmetry",
           "read_job_options"]

#: the relion_refine option under which the two half-set calls never run at the same time
SEQUENTIAL_FLAG = "--sequential_halves_recons"

_T = TypeVar("_T")


def read_model_general(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``data_model_general`` list of a model.star (pixel size, current resolution, ...)."""
    blocks = read_star(path, what="model STAR file")
    return as_mapping(blocks.get("model_general", {}))


def read_optimiser_general(path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """The ``data_optimiser_general`` list of an optimiser.star and its header comment lines.

    Returns
    -------
    general : dict
        Label -> value.
    header : str
        The leading ``#`` comment lines; relion_refine writes its command line there.
    """
    blocks = read_star(path, what="optimiser STAR file")
    return as_mapping(blocks.get("optimiser_general", {})), _comment_header(path)


def _comment_header(path: str | os.PathLike[str]) -> str:
    """The leading comment (and blank) lines of a STAR file, where relion_refine writes its command line."""
    header_lines = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip() and not line.lstrip().startswith("#"):
                break
            header_lines.append(line.rstrip("\n"))
    return "\n".join(header_lines)


_OPTIMISER_ITERATION = re.compile(r"_it(\d+)_optimiser\.star$")


def last_optimiser_star(refine_dir: str | os.PathLike[str]) -> Path | None:
    """The ``run*_itNNN_optimiser.star`` with the highest iteration in ``refine_dir``, or None.

    RELION writes no final ``run_optimiser.star``, so the last iteration's file holds the
    refinement's settings (solvent mask, particle diameter, command line).
    """
    found = [(int(m.group(1)), p) for p in Path(refine_dir).glob("*_it*_optimiser.star")
             if (m := _OPTIMISER_ITERATION.search(p.name))]
    return max(found)[1] if found else None


def solvent_mask_name(general: dict[str, Any]) -> str | None:
    """``rlnSolventMaskName`` of an optimiser's general block; None where RELION says "None" or nothing."""
    value = general.get("rlnSolventMaskName")
    if value is None or str(value).strip() in ("", "None"):
        return None
    return str(value).strip()


def read_sampling_symmetry(path: str | os.PathLike[str]) -> str | None:
    """``rlnSymmetryGroup`` of a sampling.star, or None."""
    blocks = read_star(path, what="sampling STAR file")
    for block in blocks.values():
        value = as_mapping(block).get("rlnSymmetryGroup")
        if value is not None:
            return str(value)
    return None


def read_job_options(path: str | os.PathLike[str]) -> dict[str, str]:
    """GUI options of a job.star (``data_joboptions_values``: variable -> value)."""
    blocks = read_star(path, what="job STAR file")
    table = blocks.get("joboptions_values")
    if table is None or not hasattr(table, "columns"):
        return {}
    names = [c for c in table.columns if "Variable" in str(c)]
    values = [c for c in table.columns if "Value" in str(c)]
    if not names or not values:
        return {}
    return {str(k): ("" if v is None else str(v)) for k, v in zip(table[names[0]], table[values[0]], strict=True)}


def previous_file(name: HookName, suffix: str) -> Path:
    """A file of the iteration before the call's: ``<out>_it<N-1><suffix>`` (``_optimiser.star``, ...)."""
    return Path(f"{name.out_root}_it{name.iteration - 1:03d}{suffix}")


@dataclass(frozen=True)
class HookContext:
    """What the refinement's files say around one hook call (:func:`read_hook_context`).

    Attributes
    ----------
    split_halves : bool
        The previous iteration wrote ``_half1_model.star`` (a run with split halves).
    model : dict or None
        ``data_model_general`` of the previous iteration's model.star (of the call's half).
    optimiser : dict or None
        ``data_optimiser_general`` of the previous iteration's optimiser.star.
    symmetry : str or None
        ``rlnSymmetryGroup`` of the previous iteration's sampling.star.
    job_options : dict or None
        The GUI options of the job's job.star.
    sequential_hint : str or None
        A file of the job that mentions ``--sequential_halves_recons``: the previous
        optimiser.star (relion_refine writes its command line into the header), ``note.txt`` or
        ``job.star``.
    notes : tuple of str
        Files that could not be used, and why.
    """

    split_halves: bool = False
    model: dict[str, Any] | None = None
    optimiser: dict[str, Any] | None = None
    symmetry: str | None = None
    job_options: dict[str, str] | None = None
    sequential_hint: str | None = None
    notes: tuple[str, ...] = ()


def _try(read: Callable[[], _T], notes: list[str], what: str) -> _T | None:
    try:
        return read()
    except InputFileError as exc:
        notes.append(f"{what}: not used ({exc})")
        return None


def _mentions_sequential(path: Path, *, header_only: bool = False) -> bool:
    try:
        text = _comment_header(path) if header_only else path.read_text(errors="replace")
    except OSError:
        return False
    return SEQUENTIAL_FLAG in text


def read_hook_context(name: HookName, job_dir: Path) -> HookContext:
    """Read the files a hook call looks up, in one pass (see :class:`HookContext`).

    Never raises for a missing or unreadable file: it is left out and noted.
    """
    notes: list[str] = []
    split = previous_file(name, "_half1_model.star").is_file()
    half_tag = f"_half{name.half}" if name.half else ("_half1" if split else "")
    model = _try(lambda: read_model_general(previous_file(name, f"{half_tag}_model.star")), notes, "model.star")
    optimiser = _try(lambda: read_optimiser_general(previous_file(name, "_optimiser.star")), notes, "optimiser.star")
    symmetry = _try(lambda: read_sampling_symmetry(previous_file(name, "_sampling.star")), notes, "sampling.star")
    job = None
    if (job_dir / "job.star").is_file():
        job = _try(lambda: read_job_options(job_dir / "job.star"), notes, "job.star")
    opt = previous_file(name, "_optimiser.star")
    hint = str(opt) if _mentions_sequential(opt, header_only=True) else None
    hint = hint or next((str(p) for p in (job_dir / "note.txt", job_dir / "job.star") if _mentions_sequential(p)),
                        None)
    return HookContext(split_halves=split, model=model, optimiser=optimiser[0] if optimiser else None,
                       symmetry=symmetry, job_options=job, sequential_hint=hint, notes=tuple(notes))
