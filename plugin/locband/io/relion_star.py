"""RELION STAR files around ``relion_refine --external_reconstruct``.

* :func:`read_external_reconstruct_star` reads ``<root>_external_reconstruct.star`` as written by
  RELION 3.1 (``BackProjector::externalReconstruct``) and 4.0/5.0 (which add ``rlnPixelSize`` and
  ``rlnParticleDiameter``). Labels outside these sets are an error: a newer RELION that changes
  the protocol should fail loudly, not be misread.
* :func:`read_fourier_sums` reads the three MRC arrays it names, checking their shape against the
  STAR file.
* :func:`parse_hook_name` takes iteration, half set and class/body from the file name.

The refinement's other files (the previous iteration's model, optimiser and sampling STAR files,
the job's job.star) are read by :mod:`locband.io.relion_metadata`.

Paths inside RELION's STAR files are relative to relion_refine's working directory (the project
directory), which is also the hook's working directory; they are used as they are.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine.reconstruct import padded_size
from locband.errors import InputFileError
from locband.io.mrc import read_map
from locband.io.paths import is_file
from locband.io.star import as_mapping, read_star

__all__ = ["ExternalReconstructStar", "HookName", "read_external_reconstruct_star", "read_fourier_sums",
           "parse_hook_name", "GENERAL_LABELS_31", "GENERAL_LABELS_40", "TAU2_LABELS", "GENERAL_BLOCK", "TAU2_BLOCK"]

#: labels of data_external_reconstruct_general in RELION 3.1 (src/backprojector.cpp)
GENERAL_LABELS_31 = ("rlnExtReconsDataReal", "rlnExtReconsDataImag", "rlnExtReconsWeight", "rlnExtReconsResult",
                     "rlnExtReconsResultStarfile", "rlnTau2FudgeFactor", "rlnPaddingFactor",
                     "rlnReferenceDimensionality", "rlnOriginalImageSize", "rlnCurrentImageSize")
#: labels added in RELION 4.0 (and kept in 5.0)
GENERAL_LABELS_40 = ("rlnPixelSize", "rlnParticleDiameter")
#: columns of data_external_reconstruct_tau2
TAU2_LABELS = ("rlnSpectralIndex", "rlnReferenceTau2", "rlnGoldStandardFsc")

GENERAL_BLOCK = "external_reconstruct_general"
TAU2_BLOCK = "external_reconstruct_tau2"
_HOOK_SUFFIX = "_external_reconstruct.star"
_NAME_RE = re.compile(r"^(?P<out>.+)_it(?P<it>\d{3,})(?:_half(?P<half>[12]))?_(?P<kind>class|body)(?P<idx>\d{3,})$")


@dataclass(frozen=True)
class ExternalReconstructStar:
    """The content of ``<root>_external_reconstruct.star``.

    Attributes
    ----------
    path : str
        The STAR file.
    data_real, data_imag, weight : str
        The three input arrays (MRC).
    result : str
        Where the map must be written (``rlnExtReconsResult``).
    result_star : str
        Optional feedback STAR file RELION reads if it exists (``rlnExtReconsResultStarfile``).
    tau2_fudge : float
        ``--tau2_fudge``.
    padding_factor : float
        ``--pad``.
    ref_dim : int
        2 or 3 (only 3 is supported by the hook).
    ori_size : int
        Box edge in voxels.
    current_size : int
        Fourier box of this iteration (``2 r_max``).
    pixel_size_angstrom : float or None
        ``rlnPixelSize`` (RELION 4.0+), else None.
    particle_diameter_angstrom : float or None
        ``rlnParticleDiameter`` (RELION 4.0+), else None.
    tau2 : (ori_size // 2 + 1,) ndarray of float64
        ``rlnReferenceTau2`` per shell.
    fsc : (ori_size // 2 + 1,) ndarray of float64
        ``rlnGoldStandardFsc`` per shell (all zero without split halves).
    """

    path: str
    data_real: str
    data_imag: str
    weight: str
    result: str
    result_star: str
    tau2_fudge: float
    padding_factor: float
    ref_dim: int
    ori_size: int
    current_size: int
    pixel_size_angstrom: float | None
    particle_diameter_angstrom: float | None
    tau2: npt.NDArray[np.float64]
    fsc: npt.NDArray[np.float64]

    @property
    def padded_size(self) -> int:
        """Edge of the padded Fourier grid (:func:`locband.engine.reconstruct.padded_size`)."""
        return padded_size(self.ori_size, self.padding_factor)


@dataclass(frozen=True)
class HookName:
    """What the hook's STAR file name says.

    Attributes
    ----------
    root : str
        Path without ``_external_reconstruct.star`` (e.g. ``Refine3D/job012/run_it004_half1_class001``).
    out_root : str
        relion_refine's ``--o`` (e.g. ``Refine3D/job012/run``).
    iteration : int
        Iteration number.
    half : int or None
        1 or 2 for a half-set call, None for joined, classification and non-split calls.
    kind : str
        ``"class"`` or ``"body"`` (multi-body).
    index : int
        Class or body number (from 1).
    """

    root: str
    out_root: str
    iteration: int
    half: int | None
    kind: str
    index: int

    @property
    def pair_key(self) -> str:
        """File-name stem shared by both halves, e.g. ``run_it004_class001``."""
        return f"{Path(self.out_root).name}_it{self.iteration:03d}_{self.kind}{self.index:03d}"


def parse_hook_name(path: str | os.PathLike[str]) -> HookName:
    """Iteration, half set and class/body from ``<out>_itNNN[_halfN]_{class|body}NNN_external_reconstruct.star``.

    Raises
    ------
    InputFileError
        The name does not follow RELION's pattern.
    """
    s = str(path)
    if not s.endswith(_HOOK_SUFFIX):
        raise InputFileError(f"external-reconstruct STAR file {s!r}: expected a name ending in {_HOOK_SUFFIX!r} "
                             "as relion_refine writes it")
    root = s[: -len(_HOOK_SUFFIX)]
    m = _NAME_RE.match(root)
    if m is None:
        raise InputFileError(f"external-reconstruct STAR file {s!r}: expected a name like "
                             "'<out>_it004_half1_class001_external_reconstruct.star' (iteration, optional half, "
                             "class or body number)")
    half = int(m["half"]) if m["half"] else None
    return HookName(root=root, out_root=m["out"], iteration=int(m["it"]), half=half, kind=m["kind"],
                    index=int(m["idx"]))


def _number(general: dict[str, Any], label: str, *, path: str, kind: type, minimum: float) -> Any:
    value = general.get(label)
    try:
        out = kind(value)
        ok = math.isfinite(float(out)) and float(out) >= minimum and (kind is float or float(value) == out)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        expected = "an integer" if kind is int else "a number"
        raise InputFileError(f"external-reconstruct STAR file {path!r}: _{label} must be {expected} >= {minimum:g}, "
                             f"got {value!r}")
    return out


def read_external_reconstruct_star(path: str | os.PathLike[str]) -> ExternalReconstructStar:
    """Read ``<root>_external_reconstruct.star`` (RELION 3.1, 4.0 or 5.0).

    Parameters
    ----------
    path : str or path-like
        The STAR file relion_refine passes as the hook's only argument.

    Returns
    -------
    ExternalReconstructStar

    Raises
    ------
    InputFileError
        Missing or unreadable file, a missing block or label, an unknown label, values of the
        wrong type, a tau2 table whose length disagrees with the box.
    """
    p = str(path)
    what = "external-reconstruct STAR file"
    blocks = read_star(p, what=what)
    if GENERAL_BLOCK not in blocks or TAU2_BLOCK not in blocks:
        raise InputFileError(f"{what} {p!r} must contain the blocks data_{GENERAL_BLOCK} and data_{TAU2_BLOCK}, "
                             f"found {', '.join('data_' + k for k in blocks) or 'none'}")
    general = as_mapping(blocks[GENERAL_BLOCK])
    known = set(GENERAL_LABELS_31) | set(GENERAL_LABELS_40)
    unknown = sorted(set(general) - known)
    if unknown:
        raise InputFileError(f"{what} {p!r}: unknown label(s) {', '.join('_' + u for u in unknown)} in "
                             f"data_{GENERAL_BLOCK}; locband knows the RELION 3.1-5.0 labels "
                             f"{', '.join('_' + k for k in GENERAL_LABELS_31 + GENERAL_LABELS_40)}")
    missing = [k for k in GENERAL_LABELS_31 if k not in general]
    if missing:
        raise InputFileError(f"{what} {p!r}: missing label(s) {', '.join('_' + m for m in missing)} in "
                             f"data_{GENERAL_BLOCK}")
    tau_block = blocks[TAU2_BLOCK]
    cols = [str(c) for c in getattr(tau_block, "columns", [])]
    if not cols:
        raise InputFileError(f"{what} {p!r}: data_{TAU2_BLOCK} must be a loop with the columns "
                             f"{', '.join('_' + t for t in TAU2_LABELS)}")
    unknown_cols = sorted(set(cols) - set(TAU2_LABELS))
    missing_cols = [c for c in TAU2_LABELS if c not in cols]
    if unknown_cols or missing_cols:
        raise InputFileError(f"{what} {p!r}: data_{TAU2_BLOCK} must have the columns "
                             f"{', '.join('_' + t for t in TAU2_LABELS)}, found {', '.join('_' + c for c in cols)}")
    ori = _number(general, "rlnOriginalImageSize", path=p, kind=int, minimum=8)
    cur = _number(general, "rlnCurrentImageSize", path=p, kind=int, minimum=2)
    ref_dim = _number(general, "rlnReferenceDimensionality", path=p, kind=int, minimum=2)
    if ref_dim != 3:
        raise InputFileError(f"{what} {p!r}: _rlnReferenceDimensionality is {ref_dim}; locband filters 3-D "
                             "references only (2-D classification is not supported)")
    tau2, fsc = _tau2_table(tau_block, ori, path=p)
    opt = {k: (_number(general, k, path=p, kind=float, minimum=0.0) if k in general else None)
           for k in GENERAL_LABELS_40}
    return ExternalReconstructStar(
        path=p, data_real=str(general["rlnExtReconsDataReal"]), data_imag=str(general["rlnExtReconsDataImag"]),
        weight=str(general["rlnExtReconsWeight"]), result=str(general["rlnExtReconsResult"]),
        result_star=str(general["rlnExtReconsResultStarfile"]),
        tau2_fudge=_number(general, "rlnTau2FudgeFactor", path=p, kind=float, minimum=1e-6),
        padding_factor=_number(general, "rlnPaddingFactor", path=p, kind=float, minimum=1.0),
        ref_dim=ref_dim, ori_size=ori, current_size=cur,
        pixel_size_angstrom=opt["rlnPixelSize"] or None, particle_diameter_angstrom=opt["rlnParticleDiameter"] or None,
        tau2=tau2, fsc=fsc)


def _tau2_table(block: Any, ori_size: int, *, path: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    n = ori_size // 2 + 1
    try:
        idx = np.asarray(block["rlnSpectralIndex"], dtype=np.float64)
        tau2 = np.asarray(block["rlnReferenceTau2"], dtype=np.float64)
        fsc = np.asarray(block["rlnGoldStandardFsc"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputFileError(f"external-reconstruct STAR file {path!r}: data_{TAU2_BLOCK} has non-numeric "
                             f"values ({exc})") from None
    if idx.size != n or not np.array_equal(idx, np.arange(n)):
        raise InputFileError(f"external-reconstruct STAR file {path!r}: data_{TAU2_BLOCK} must list shells "
                             f"0..{n - 1} (ori_size {ori_size} // 2 + 1 = {n} rows), found {idx.size} rows")
    if not (np.isfinite(tau2).all() and np.isfinite(fsc).all()) or (tau2 < 0).any():
        raise InputFileError(f"external-reconstruct STAR file {path!r}: _rlnReferenceTau2 must be finite and >= 0 "
                             "and _rlnGoldStandardFsc finite in every shell")
    return tau2, fsc


def _read_array(path: str, *, what: str, star: str, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    if not is_file(path):
        raise InputFileError(f"{what} {path!r} (named in {star!r}) does not exist")
    data = read_map(path, what=what).data
    if data.shape != shape:
        raise InputFileError(f"{what} {path!r} has shape {data.shape} (z, y, x), but {star!r} implies "
                             f"{shape} (padded box round(pad * ori_size) = {shape[0]}, half-complex x axis)")
    if not np.isfinite(data).all():
        raise InputFileError(f"{what} {path!r} has {int(data.size - np.isfinite(data).sum())} non-finite values")
    return data


def read_fourier_sums(star: ExternalReconstructStar) -> tuple[npt.NDArray[np.complex64], npt.NDArray[np.float32]]:
    """Read the back-projected data (complex) and weight arrays named in the STAR file.

    Returns
    -------
    data : (P, P, P//2 + 1) ndarray of complex64
    weight : (P, P, P//2 + 1) ndarray of float32

    Raises
    ------
    InputFileError
        A missing or unreadable array, or a shape that disagrees with the STAR file.
    """
    p = star.padded_size
    shape = (p, p, p // 2 + 1)
    real = _read_array(star.data_real, what="data (real part)", star=star.path, shape=shape)
    imag = _read_array(star.data_imag, what="data (imaginary part)", star=star.path, shape=shape)
    weight = _read_array(star.weight, what="weight", star=star.path, shape=shape)
    if (weight < 0).any():
        raise InputFileError(f"weight {star.weight!r} has negative values; back-projected CTF² weights are >= 0")
    data = np.empty(shape, np.complex64)
    data.real = real
    data.imag = imag
    return data, weight
