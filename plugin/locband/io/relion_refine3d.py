"""What the External job reads from a Refine3D job folder besides the half-maps.

RELION writes no final ``run_optimiser.star``; the last ``run_it*_optimiser.star`` names the
solvent mask of the refinement in ``data_optimiser_general`` / ``rlnSolventMaskName`` ("None"
without a mask), relative to the project folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from locband.io.errors import InputFileError

__all__ = ["last_optimiser_star", "solvent_mask_name"]

_ITERATION = re.compile(r"_it(\d+)_optimiser\.star$")


def last_optimiser_star(refine_dir: str | os.PathLike[str]) -> Path | None:
    """Return the ``run*_itNNN_optimiser.star`` with the highest iteration in ``refine_dir``, or None."""
    found = [(int(m.group(1)), p) for p in Path(refine_dir).glob("*_it*_optimiser.star")
             if (m := _ITERATION.search(p.name))]
    return max(found)[1] if found else None


def solvent_mask_name(optimiser_star: str | os.PathLike[str]) -> str | None:
    """``rlnSolventMaskName`` of an optimiser STAR file; None when it says "None" or is absent.

    Raises
    ------
    InputFileError
        The file is not a readable STAR file with a ``data_optimiser_general`` block.
    """
    import starfile

    try:
        blocks = starfile.read(optimiser_star, always_dict=True)
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"optimiser file {str(optimiser_star)!r} is not a readable STAR file: {exc}") from None
    general = blocks.get("optimiser_general")
    if general is None:
        raise InputFileError(f"optimiser file {str(optimiser_star)!r} has no data_optimiser_general block")
    value = general.get("rlnSolventMaskName") if isinstance(general, dict) else None
    if value is None or str(value).strip() in ("", "None"):
        return None
    return str(value).strip()
