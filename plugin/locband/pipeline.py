"""Files in, files out: read half-maps, run the engine, write every output as one set.

Shared by ``locband filter``, ``locband demo``, ``locband report`` and the hosts that work on
MRC files (the RELION External job, cryoSPARC offline). Reading and writing go through
:mod:`locband.io`; the names of the files come from :mod:`locband.output_names`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine.denoise_params import DenoiseResult
from locband.engine.local import LocalFilter
from locband.engine.params import FilterResult, ProgressCallback
from locband.inputs import load_inputs, naming_engine_errors
from locband.io.mrc import read_central_slices, write_map
from locband.io.outputs import OutputSet, Writer
from locband.io.summary import write_json
from locband.options import EngineSettings
from locband.output_names import FILTER, MAP_KINDS, REPORT, OutputNames
from locband.report import CentralSlices, RawMap, report_files
from locband.summary import summarise

__all__ = ["FilterJob", "OutputPart", "plan_outputs", "write_outputs", "filter_files", "add_report", "mean_of_halves"]

#: ``report(summary) -> {kind: writer}``: the report files, drawn once the summary is complete
ReportDrawer = Callable[[dict[str, Any]], Mapping[str, Writer]]


@dataclass(frozen=True)
class FilterJob:
    """A filter run on files: what to read, how to filter, where to write.

    Attributes
    ----------
    half1, half2 : Path
        The half-maps (MRC).
    out_dir : Path
        The output folder (created only when the outputs are written).
    mask : Path or None
        Soft mask (MRC).
    pixel_size_angstrom : float or None
        Voxel size; None: from the half-map headers.
    engine : EngineSettings
        The engine's settings.
    report : bool
        Also draw ``report.png`` and ``report.pdf``.
    """

    half1: Path
    half2: Path
    out_dir: Path
    mask: Path | None = None
    pixel_size_angstrom: float | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)
    report: bool = True

    @property
    def inputs(self) -> dict[str, Path | None]:
        """What the run reads, as the output checks name it."""
        return {"half-map 1": self.half1, "half-map 2": self.half2, "mask": self.mask}


@dataclass(frozen=True)
class OutputPart:
    """A second result of the same inputs, written into the same output set (all-or-nothing).

    The set's names with kinds that start with ``prefix`` are its files, by the kinds
    :func:`write_outputs` knows (``names.part(prefix)``: ``denoised_full`` -> ``full``); a map
    kind it has no name for (``local_resolution``) is the main result's file, listed in its
    summary too. Both summaries carry the set's run id.

    Attributes
    ----------
    prefix : str
        Kind prefix of its files in the set's names (``denoised_``).
    result : FilterResult or DenoiseResult
        Its maps.
    summary : dict
        Its summary (``run_id`` and ``outputs`` are filled in when it is written).
    report : callable, optional
        ``report(summary) -> {kind: writer}``, its report.
    labels : mapping, optional
        MRC header labels of its maps, by output kind.
    origin : tuple of float
        MRC header origin (x, y, z) in Å of its maps.
    """

    prefix: str
    result: FilterResult | DenoiseResult
    summary: dict[str, Any]
    report: ReportDrawer | None = None
    labels: Mapping[str, tuple[str, ...]] | None = None
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)


def plan_outputs(out_dir: Path, *, inputs: Mapping[str, Path | None], names: OutputNames = FILTER,
                 also_writes: Iterable[str] = ()) -> OutputSet:
    """The output set of one run, checked before any work.

    Every name of the set (``names``, optional outputs included) and every name written beside
    it (``also_writes``) is compared with the inputs (what -> path), and the folder must be
    writable or creatable; nothing is created yet.

    Raises
    ------
    OutputFileError
        An output would overwrite an input (both named), a folder holds an output name, or the
        output folder cannot be written.
    """
    outs = OutputSet(out_dir, inputs=inputs, owned=names.values(), also_writes=also_writes)
    outs.check()
    return outs


def _map_writer(volume: npt.NDArray[np.float32], pixel_size_angstrom: float, origin: tuple[float, float, float],
                labels: tuple[str, ...] = ()) -> Writer:
    return lambda p: write_map(p, volume, pixel_size_angstrom=pixel_size_angstrom, origin=origin, labels=labels)


def write_outputs(result: FilterResult | DenoiseResult, outs: OutputSet, *, summary: dict[str, Any],
                  names: OutputNames = FILTER, origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
                  report: ReportDrawer | None = None, extra: Mapping[str, Writer] | None = None,
                  labels: Mapping[str, tuple[str, ...]] | None = None,
                  parts: Sequence[OutputPart] = ()) -> dict[str, Path]:
    """Write maps, summary, report, ``parts`` and ``extra`` files as one set, all-or-nothing; returns kind -> path.

    Parameters
    ----------
    result : FilterResult or DenoiseResult
        What the engine returned (the maps of :data:`~locband.output_names.MAP_KINDS`).
    outs : OutputSet
        The set planned by :func:`plan_outputs`.
    summary : dict
        The run's summary; ``run_id`` and ``outputs`` (kind -> path, the parts' files by their
        kinds in ``names``) are filled in here.
    names : OutputNames
        Output kind -> file name (:mod:`locband.output_names`); must name every kind written.
    origin : tuple of float
        MRC header origin (x, y, z) in Å of the maps.
    report : callable, optional
        ``report(summary) -> {kind: writer}`` (:func:`locband.report.report_files`), called once
        the summary is complete; the report joins the set.
    extra : mapping, optional
        More files of the set (a host's node file, a dataset), output kind -> ``writer(tmp_path)``.
    labels : mapping, optional
        MRC header labels of a map, by output kind (an interpretation map says what it is for).
    parts : sequence of OutputPart
        Other results of the same inputs written into the same set (the interpretation map).
    """
    main = OutputPart("", result, summary, report, labels, origin)
    pieces = [(main, names), *((p, names.part(p.prefix)) for p in parts)]
    listed = [_add_maps(piece, outs, piece_names) for piece, piece_names in pieces]
    files = [{**paths, **{kind: outs.out_dir / piece_names[kind]  # the report and extras, added below
                          for kind in [*(REPORT if piece.report else ()), *((extra or {}) if piece is main else ())]}}
             for (piece, piece_names), paths in zip(pieces, listed, strict=True)]
    for i, (piece, _) in enumerate(pieces):
        shared = {k: v for k, v in listed[0].items() if k in MAP_KINDS and k not in files[i]}  # the main result's
        others = {p.prefix + k: v for (p, _), f in zip(pieces[1:], files[1:], strict=True) for k, v in f.items()}
        piece.summary["run_id"] = outs.run_id
        piece.summary["outputs"] = {k: str(v) for k, v in {**shared, **files[i], **(others if i == 0 else {})}.items()}
    part_files = {p.prefix + k: v for (p, _), got in zip(pieces[1:], listed[1:], strict=True) for k, v in got.items()}
    written = {**listed[0], **part_files}
    for piece, piece_names in pieces:  # each report drawn from its complete summary
        for kind, writer in (piece.report(piece.summary) if piece.report is not None else {}).items():
            written[piece.prefix + kind] = outs.add(piece_names[kind], writer)
    for kind, writer in (extra or {}).items():
        written[kind] = outs.add(names[kind], writer)
    outs.commit()
    return written


def _add_maps(piece: OutputPart, outs: OutputSet, names: OutputNames) -> dict[str, Path]:
    """Add one result's maps (those ``names`` names) and its summary to the set; kind -> path."""
    result, px, origin = piece.result, piece.result.pixel_size_angstrom, piece.origin
    labels = piece.labels or {}
    paths = {kind: outs.add(names[kind], _map_writer(getattr(result, attr), px, origin, labels.get(kind, ())))
             for kind, attr in MAP_KINDS.items() if kind in names}
    band_snr = getattr(result, "band_snr", None)  # the linear filter's, when asked for
    if band_snr is not None:
        # an MRC volume stack, one coarse volume per band (centres in summary.json "bands")
        coarse_px = px * result.full.shape[-1] / band_snr.shape[-1]
        paths["band_snr"] = outs.add(names["band_snr"], _map_writer(band_snr, coarse_px, origin))
    summary = piece.summary
    paths["summary"] = outs.add(names["summary"], lambda p: write_json(p, summary))
    return paths


def mean_of_halves(half1: Path, half2: Path) -> CentralSlices:
    """What the report shows as its input: the central sections of the mean of the two half-map files.

    Only those sections are read (the volumes would add three full-size arrays to the run's
    peak memory, at the end of the run when its outputs are held).
    """
    (xy1, xz1), (xy2, xz2) = (read_central_slices(h, what=f"half-map {i}") for i, h in enumerate((half1, half2), 1))
    half = np.float32(0.5)
    return CentralSlices(xy=(xy1 + xy2) * half, xz=(xz1 + xz2) * half)


def filter_files(job: FilterJob, *, progress: ProgressCallback | None = None, names: OutputNames = FILTER,
                 extra_outputs: Mapping[str, Writer] | None = None, also_writes: Iterable[str] = (),
                 parts: Sequence[OutputPart] = ()) -> dict[str, Any]:
    """Filter two half-map files into ``job.out_dir``; returns the summary written there.

    Before any work the outputs are checked against the inputs and the folder
    (:func:`plan_outputs`); the folder is created only when the outputs are written, so bad
    input (refused while reading or by the engine) leaves no folder behind. All outputs (maps,
    ``summary.json``, the report, ``parts`` made from the same inputs, ``extra_outputs`` by kind
    of ``names``) are one set: see :mod:`locband.io.outputs`.

    Raises
    ------
    InputFileError
        Unreadable or inconsistent inputs.
    OutputFileError
        An output that would overwrite an input, an unwritable output folder, or a write error
        (the message names the file).
    """
    t0 = time.perf_counter()
    outs = plan_outputs(job.out_dir, inputs=job.inputs, names=names, also_writes=also_writes)
    m1, m2, mk, px = load_inputs(job.half1, job.half2, job.mask, pixel_size_angstrom=job.pixel_size_angstrom)
    t_read = time.perf_counter() - t0
    origin = m1.origin
    lf = LocalFilter(m1.data.shape, pixel_size_angstrom=px, mask=None if mk is None else mk.data,
                     params=job.engine.params, workers=job.engine.workers(), backend=job.engine.fft_backend,
                     device=job.engine.device)
    # hand the arrays over: the engine drops them once it has their spectra (memory at 256^3)
    halves = [m1.data, m2.data]
    del m1, m2, mk
    with naming_engine_errors(job.half1, job.half2):
        result = lf.filter_owned(halves, progress=progress)
    t1 = time.perf_counter()
    summary = summarise(result, inputs={"half1": str(job.half1), "half2": str(job.half2),
                                        "mask": None if job.mask is None else str(job.mask)},
                        timings={"read": t_read}, mask=lf.mask)

    def draw(summary: dict[str, Any]) -> Mapping[str, Writer]:
        return report_files(summary=summary, raw=mean_of_halves(job.half1, job.half2), filtered=result.full,
                            local_resolution=result.local_resolution_angstrom, mask=lf.mask)

    write_outputs(result, outs, summary=summary, names=names, origin=origin, report=draw if job.report else None,
                  extra=extra_outputs, parts=parts)
    summary["timings_seconds"]["write"] = round(time.perf_counter() - t1, 4)
    return summary


def add_report(out_dir: Path, *, summary: dict[str, Any], raw: RawMap | None,
               filtered: npt.NDArray[np.float32], local_resolution: npt.NDArray[np.float32],
               mask: npt.NDArray[np.float32] | None, inputs: Mapping[str, str | Path | None] | None = None,
               names: OutputNames = FILTER) -> list[Path]:
    """Add a redrawn report to the complete output set in ``out_dir``; returns the files written.

    Parameters
    ----------
    out_dir : Path
        Output folder of a finished run: it must hold a complete set
        (:func:`locband.io.outputs.require_complete_set`); the report joins it with its run id.
    summary : dict
        The run's summary (as written to ``summary.json``).
    raw : (nz, ny, nx) ndarray, CentralSlices or None
        The unfiltered map shown as "input" (the mean of the halves, or only its central
        sections: :func:`mean_of_halves`), if available.
    filtered, local_resolution : (nz, ny, nx) ndarray
        The run's filtered map and local resolution (Å).
    mask : (nz, ny, nx) ndarray or None
        Soft mask; the histogram and the colour overlay use voxels inside it.
    inputs : mapping, optional
        The files the report was drawn from (what -> path): the report never replaces one.

    Raises
    ------
    OutputFileError
        ``out_dir`` holds an incomplete set, a report name is an input, or a write error.
    """
    outs = OutputSet(out_dir, inputs=inputs, owned=[names[k] for k in REPORT], extend=True)
    outs.check()
    drawn = report_files(summary=summary, raw=raw, filtered=filtered, local_resolution=local_resolution, mask=mask)
    for kind, writer in drawn.items():
        outs.add(names[kind], writer)
    return outs.commit()
