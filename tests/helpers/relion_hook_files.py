"""The four files relion_refine writes before it calls the hook, written by the tests (and replays).

Test-only: the package reads these files (:mod:`locband.io.relion_star`), it never writes them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from locband.io.atomic import atomic_write_text
from locband.io.mrc import write_map
from locband.io.relion_star import GENERAL_BLOCK, TAU2_BLOCK, TAU2_LABELS


def write_external_reconstruct_inputs(root: str | os.PathLike[str], data: npt.ArrayLike, weight: npt.ArrayLike, *,
                                      tau2: npt.ArrayLike, fsc: npt.ArrayLike, ori_size: int, current_size: int,
                                      padding_factor: float = 2.0, tau2_fudge: float = 1.0,
                                      pixel_size_angstrom: float | None = None,
                                      particle_diameter_angstrom: float | None = None) -> Path:
    """Write the four files relion_refine writes before calling the hook (tests, replays).

    Arrays go to ``<root>_external_reconstruct_{data_real,data_imag,weight}.mrc`` as float32 with
    voxel size 0, the STAR file to ``<root>_external_reconstruct.star`` in RELION's text layout;
    ``pixel_size_angstrom``/``particle_diameter_angstrom`` add the RELION 4.0/5.0 labels.

    Returns
    -------
    Path
        The STAR file.
    """
    root = str(root)
    d = np.asarray(data)
    names = {}
    for part, arr in (("data_real", d.real), ("data_imag", d.imag), ("weight", np.asarray(weight))):
        names[part] = f"{root}_external_reconstruct_{part}.mrc"
        write_map(names[part], np.asarray(arr, dtype=np.float32), pixel_size_angstrom=0.0)
    general = [("rlnExtReconsDataReal", names["data_real"]), ("rlnExtReconsDataImag", names["data_imag"]),
               ("rlnExtReconsWeight", names["weight"]), ("rlnExtReconsResult", f"{root}_external_reconstruct.mrc"),
               ("rlnExtReconsResultStarfile", f"{root}_external_reconstruct_out.star"),
               ("rlnTau2FudgeFactor", f"{tau2_fudge:.6f}"), ("rlnPaddingFactor", f"{padding_factor:.6f}"),
               ("rlnReferenceDimensionality", "3"), ("rlnOriginalImageSize", str(ori_size)),
               ("rlnCurrentImageSize", str(current_size))]
    if pixel_size_angstrom is not None:
        general.append(("rlnPixelSize", f"{pixel_size_angstrom:.6f}"))
    if particle_diameter_angstrom is not None:
        general.append(("rlnParticleDiameter", f"{particle_diameter_angstrom:.6f}"))
    lines = ["", "# version 30001", "", f"data_{GENERAL_BLOCK}", ""]
    lines += [f"_{k:<35} {v}" for k, v in general]
    lines += ["", "", "# version 30001", "", f"data_{TAU2_BLOCK}", "", "loop_ "]
    lines += [f"_{label} #{i + 1} " for i, label in enumerate(TAU2_LABELS)]
    t = np.asarray(tau2, dtype=np.float64).ravel()
    f = np.asarray(fsc, dtype=np.float64).ravel()
    lines += [f"{i:12d} {t[i]:12.6e} {f[i]:12.6f} " for i in range(t.size)]
    star = Path(f"{root}_external_reconstruct.star")
    atomic_write_text(star, "\n".join(lines) + "\n\n")
    return star
