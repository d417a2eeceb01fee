"""RELION STAR files around ``relion_refine --external_reconstruct``.

* :func:`read_external_reconstruct_star` reads ``<root>_external_reconstruct.star`` as written by
  RELION 3.1 (``BackProjector::externalReconstruct``) and 4.0/5.0 (which add ``rlnPixelSize`` and
  ``rlnParticleDiameter``). Labels outside these sets are an error: a newer RELION that changes
  the protocol should fail loudly, not be misread.
* :func:`read_fourier_sums` reads the three MRC arrays it names, checking their shape against the
  STAR file.
* :func:`parse_hook_name` takes iteration, half set and class/body from the file name.
* :func:`read_model_general`, :func:`read_optimiser_general`, :func:`read_sampling_symmetry`,
  :func:`read_job_options`: look-ups in the previous iteration's files and the job's job.star.

Paths inside RELION's STAR files are relative to relion_refine's working directory (the project
directory), which is also the hook's working directory; they are used as they are.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import numpy.typing as npt

from locband.engine.reconstruct import padded_size
from locband.errors import InputFileError

__all__ = ["ExternalReconstructStar", "HookName", "read_external_reconstruct_star", "read_fourier_sums",
           "last_optimiser_star", "parse_hook_name", "read_model_general", "read_optimiser_general", "read_sampling_symmetry", "solvent_mask_name",
           "read_job_options", "write_external_reconstruct_inputs", "GENERAL_LABELS_31", "GENERAL_LABELS_40",
           "TAU2_LABELS"]

#: labels of data_external_reconstruct_general in RELION 3.1 (src/backprojector.cpp)
GENERAL_LABELS_31 = ("rlnExtReconsDataReal", "rlnExtReconsDataImag", "rlnExtReconsWeight", "rlnExtReconsResult",
                     "rlnExtReconsResultStarfile", "rlnTau2FudgeFactor", "rlnPaddingFactor",
                     "rlnReferenceDimensionality", "rlnOriginalImageSize", "rlnCurrentImageSize")
#: labels added in RELION 4.0 (and kept in 5.0)
GENERAL_LABELS_40 = ("rlnPixelSize", "rlnParticleDiameter")
#: columns of data_external_reconstruct_tau2
TAU2_LABELS = ("rlnSpectralIndex", "rlnReferenceTau2", "rlnGoldStandardFsc")

_GENERAL_BLOCK = "external_reconstruct_general"
_TAU2_BLOCK = "external_reconstruct_tau2"
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


def _read_star(path: str | os.PathLike[str], *, what: str) -> dict[str, Any]:
    import starfile

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{what} {str(p)!r} does not exist" if not p.exists() else
                             f"{what} {str(p)!r} is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = starfile.read(p, always_dict=True)
    except Exception as exc:  # starfile/pandas raise many types on malformed text
        raise InputFileError(f"{what} {str(p)!r} is not a readable STAR file: {exc}") from None
    if not isinstance(blocks, dict) or not blocks:
        raise InputFileError(f"{what} {str(p)!r} holds no STAR data block")
    return dict(blocks)


def _as_mapping(block: Any) -> dict[str, Any]:
    """A STAR block as a label -> value mapping (list blocks, or one-row loops)."""
    if isinstance(block, dict):
        return block
    if hasattr(block, "columns") and len(block) >= 1:
        return {str(k): block[k].iloc[0] for k in block.columns}
    return {}


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
    blocks = _read_star(p, what=what)
    if _GENERAL_BLOCK not in blocks or _TAU2_BLOCK not in blocks:
        raise InputFileError(f"{what} {p!r} must contain the blocks data_{_GENERAL_BLOCK} and data_{_TAU2_BLOCK}, "
                             f"found {', '.join('data_' + k for k in blocks) or 'none'}")
    general = _as_mapping(blocks[_GENERAL_BLOCK])
    known = set(GENERAL_LABELS_31) | set(GENERAL_LABELS_40)
    unknown = sorted(set(general) - known)
    if unknown:
        raise InputFileError(f"{what} {p!r}: unknown label(s) {', '.join('_' + u for u in unknown)} in "
                             f"data_{_GENERAL_BLOCK}; locband knows the RELION 3.1-5.0 labels "
                             f"{', '.join('_' + k for k in GENERAL_LABELS_31 + GENERAL_LABELS_40)}")
    missing = [k for k in GENERAL_LABELS_31 if k not in general]
    if missing:
        raise InputFileError(f"{what} {p!r}: missing label(s) {', '.join('_' + m for m in missing)} in "
                             f"data_{_GENERAL_BLOCK}")
    tau_block = blocks[_TAU2_BLOCK]
    cols = [str(c) for c in getattr(tau_block, "columns", [])]
    if not cols:
        raise InputFileError(f"{what} {p!r}: data_{_TAU2_BLOCK} must be a loop with the columns "
                             f"{', '.join('_' + t for t in TAU2_LABELS)}")
    unknown_cols = sorted(set(cols) - set(TAU2_LABELS))
    missing_cols = [c for c in TAU2_LABELS if c not in cols]
    if unknown_cols or missing_cols:
        raise InputFileError(f"{what} {p!r}: data_{_TAU2_BLOCK} must have the columns "
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
        raise InputFileError(f"external-reconstruct STAR file {path!r}: data_{_TAU2_BLOCK} has non-numeric "
                             f"values ({exc})") from None
    if idx.size != n or not np.array_equal(idx, np.arange(n)):
        raise InputFileError(f"external-reconstruct STAR file {path!r}: data_{_TAU2_BLOCK} must list shells "
                             f"0..{n - 1} (ori_size {ori_size} // 2 + 1 = {n} rows), found {idx.size} rows")
    if not (np.isfinite(tau2).all() and np.isfinite(fsc).all()) or (tau2 < 0).any():
        raise InputFileError(f"external-reconstruct STAR file {path!r}: _rlnReferenceTau2 must be finite and >= 0 "
                             "and _rlnGoldStandardFsc finite in every shell")
    return tau2, fsc


def _read_array(path: str, *, what: str, star: str, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{what} {path!r} (named in {star!r}) does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(p, mode="r", permissive=True) as mrc:
                if mrc.data is None:
                    raise InputFileError(f"{what} {path!r} is not a readable MRC file (bad header or truncated)")
                data = np.array(mrc.data, dtype=np.float32)
    except InputFileError:
        raise
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{what} {path!r} is not a readable MRC file: {exc}") from None
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


def read_model_general(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``data_model_general`` list of a model.star (pixel size, current resolution, ...)."""
    blocks = _read_star(path, what="model STAR file")
    return _as_mapping(blocks.get("model_general", {}))


def read_optimiser_general(path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """The ``data_optimiser_general`` list of an optimiser.star and its header comment lines.

    Returns
    -------
    general : dict
        Label -> value.
    header : str
        The leading ``#`` comment lines; relion_refine writes its command line there.
    """
    blocks = _read_star(path, what="optimiser STAR file")
    header_lines = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip() and not line.lstrip().startswith("#"):
                break
            header_lines.append(line.rstrip("\n"))
    return _as_mapping(blocks.get("optimiser_general", {})), "\n".join(header_lines)


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
    blocks = _read_star(path, what="sampling STAR file")
    for block in blocks.values():
        value = _as_mapping(block).get("rlnSymmetryGroup")
        if value is not None:
            return str(value)
    return None


def read_job_options(path: str | os.PathLike[str]) -> dict[str, str]:
    """GUI options of a job.star (``data_joboptions_values``: variable -> value)."""
    blocks = _read_star(path, what="job STAR file")
    table = blocks.get("joboptions_values")
    if table is None or not hasattr(table, "columns"):
        return {}
    names = [c for c in table.columns if "Variable" in str(c)]
    values = [c for c in table.columns if "Value" in str(c)]
    if not names or not values:
        return {}
    return {str(k): ("" if v is None else str(v)) for k, v in zip(table[names[0]], table[values[0]], strict=True)}


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
    from locband.io.atomic import atomic_write_text
    from locband.io.mrc import write_map

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
    lines = ["", "# version 30001", "", f"data_{_GENERAL_BLOCK}", ""]
    lines += [f"_{k:<35} {v}" for k, v in general]
    lines += ["", "", "# version 30001", "", f"data_{_TAU2_BLOCK}", "", "loop_ "]
    lines += [f"_{label} #{i + 1} " for i, label in enumerate(TAU2_LABELS)]
    t = np.asarray(tau2, dtype=np.float64).ravel()
    f = np.asarray(fsc, dtype=np.float64).ravel()
    lines += [f"{i:12d} {t[i]:12.6e} {f[i]:12.6f} " for i in range(t.size)]
    star = Path(f"{root}_external_reconstruct.star")
    atomic_write_text(star, "\n".join(lines) + "\n\n")
    return star
