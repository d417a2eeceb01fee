"""Scoring a refinement of the synthetic data set against its truth: orientations and FSC."""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt
import pandas as pd
from relion_phantom import Dataset

from locband.engine.fsc import fsc
from locband.engine.units import cycles_to_angstrom
from locband.io.mrc import read_map

__all__ = ["euler_to_matrix", "angular_errors_degrees", "fsc_against_truth"]


def euler_to_matrix(angles_degrees: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """RELION's rotation matrices (``Euler_angles2matrix``, ZYZ) of ``(n, 3)`` (rot, tilt, psi) in degrees."""
    a, b, g = np.radians(np.atleast_2d(np.asarray(angles_degrees, dtype=np.float64))).T
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    m = np.empty((a.size, 3, 3))
    m[:, 0] = np.stack([cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb], axis=1)
    m[:, 1] = np.stack([-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb], axis=1)
    m[:, 2] = np.stack([sc, ss, cb], axis=1)
    return m


def angular_errors_degrees(refined: pd.DataFrame, truth: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Geodesic angle between each particle's refined and true orientation, matched by ``rlnImageName``."""
    cols = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    both = refined[["rlnImageName", *cols]].merge(truth[["rlnImageName", *cols]], on="rlnImageName",
                                                  suffixes=("_fit", "_true"))
    if len(both) != len(truth):
        raise ValueError(f"refined data has {len(both)} of the {len(truth)} true particles")
    r_fit = euler_to_matrix(both[[c + "_fit" for c in cols]].to_numpy())
    r_true = euler_to_matrix(both[[c + "_true" for c in cols]].to_numpy())
    trace = np.einsum("nij,nij->n", r_fit, r_true)  # tr(R_fit R_true^T)
    return np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))


def fsc_against_truth(map_path: str | os.PathLike[str], dataset: Dataset, *,
                      mask_path: str | os.PathLike[str] | None) -> dict[str, float]:
    """FSC of a map against the true (mean) volume, masked by ``mask_path`` (None: unmasked): crossings in Å."""
    vol = read_map(map_path, what="refined map").data
    truth = read_map(dataset.truth_map, what="true map").data
    mask = None if mask_path is None else read_map(mask_path, what="mask").data
    curve = fsc(vol, truth, mask=mask)
    psize = dataset.spec.pixel_size_angstrom
    return {f"fsc{t}_angstrom": float(cycles_to_angstrom(curve.crossing(t), pixel_size_angstrom=psize))
            for t in (0.5, 0.143)}
