"""Files in, files out: read half-maps, run the engine, write every output as one set.

Shared by ``locband filter``, ``locband demo``, ``locband report`` and the hosts that work on
MRC files (the RELION External job, cryoSPARC offline). Reading and writing go through
:mod:`locband.io`; the names of the files come from :mod:`locband.output_names`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine.local import LocalFilter
from locband.engine.params import FilterParams, FilterResult, ProgressCallback
from locband.inputs import load_inputs, naming_engine_errors
from locband.io.mrc import read_map, write_map
from locband.io.outputs import OutputSet, Writer
from locband.io.summary import write_json
from locband.output_names import FILTER, MAP_KINDS, REPORT, OutputNames
from locband.report import report_files
from locband.summary import summarise

__all__ = ["plan_outputs", "write_outputs", "filter_files", "add_report", "mean_of_halves"]

#: ``report(summary) -> {kind: writer}``: the report files, drawn once the summary is complete
ReportDrawer = Callable[[dict[str, Any]], Mapping[str, Writer]]


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


def _map_writer(volume: npt.NDArray[np.float32], pixel_size_angstrom: float,
                origin: tuple[float, float, float]) -> Writer:
    return lambda p: write_map(p, volume, pixel_size_angstrom=pixel_size_angstrom, origin=origin)


def write_outputs(result: FilterResult, outs: OutputSet, *, summary: dict[str, Any], names: OutputNames = FILTER,
                  origin: tuple[float, float, float] = (0.0, 0.0, 0.0), report: ReportDrawer | None = None,
                  extra: Mapping[str, Writer] | None = None) -> dict[str, Path]:
    """Write maps, summary, report and ``extra`` files as one set, all-or-nothing; returns kind -> path.

    Parameters
    ----------
    result : FilterResult
        What the engine returned.
    outs : OutputSet
        The set planned by :func:`plan_outputs`.
    summary : dict
        The run's summary; ``run_id`` and ``outputs`` (kind -> path) are filled in here.
    names : OutputNames
        Output kind -> file name (:mod:`locband.output_names`); must name every kind written.
    origin : tuple of float
        MRC header origin (x, y, z) in Å of the maps.
    report : callable, optional
        ``report(summary) -> {kind: writer}`` (:func:`locband.report.report_files`), called once
        the summary is complete; the report joins the set.
    extra : mapping, optional
        More files of the set (a host's node file, a dataset), output kind -> ``writer(tmp_path)``.
    """
    px = result.pixel_size_angstrom
    paths = {kind: outs.add(names[kind], _map_writer(getattr(result, attr), px, origin))
             for kind, attr in MAP_KINDS.items()}
    if result.band_snr is not None:
        # an MRC volume stack, one coarse volume per band (centres in summary.json "bands")
        coarse_px = px * result.full.shape[-1] / result.band_snr.shape[-1]
        paths["band_snr"] = outs.add(names["band_snr"], _map_writer(result.band_snr, coarse_px, origin))
    paths["summary"] = outs.add(names["summary"], lambda p: write_json(p, summary))
    later = {kind: outs.out_dir / names[kind] for kind in [*(REPORT if report else ()), *(extra or {})]}
    summary["run_id"] = outs.run_id
    summary["outputs"] = {k: str(v) for k, v in {**paths, **later}.items()}
    drawn = report(summary) if report is not None else {}
    for kind, writer in {**drawn, **(extra or {})}.items():
        paths[kind] = outs.add(names[kind], writer)
    outs.commit()
    return paths


def mean_of_halves(half1: Path, half2: Path) -> npt.NDArray[np.float32]:
    """The unfiltered map the report shows as its input: the mean of the two half-map files."""
    raw = read_map(half1, what="half-map 1").data
    raw += read_map(half2, what="half-map 2").data
    raw *= np.float32(0.5)
    return raw


def filter_files(half1: Path, half2: Path, *, mask_path: Path | None, out_dir: Path,
                 pixel_size_angstrom: float | None = None, params: FilterParams | None = None,
                 workers: int = 1, backend: str | None = None, report: bool = True,
                 progress: ProgressCallback | None = None, names: OutputNames = FILTER,
                 extra_outputs: Mapping[str, Writer] | None = None,
                 also_writes: Iterable[str] = ()) -> dict[str, Any]:
    """Filter two half-map files into ``out_dir``; returns the summary written there.

    Before any work the outputs are checked against the inputs and the folder
    (:func:`plan_outputs`); the folder is created only when the outputs are written, so bad
    input (refused while reading or by the engine) leaves no folder behind. All outputs (maps,
    ``summary.json``, the report, ``extra_outputs`` by kind of ``names``) are one set: see
    :mod:`locband.io.outputs`.

    Raises
    ------
    InputFileError
        Unreadable or inconsistent inputs.
    OutputFileError
        An output that would overwrite an input, an unwritable output folder, or a write error
        (the message names the file).
    """
    t0 = time.perf_counter()
    outs = plan_outputs(out_dir, inputs={"half-map 1": half1, "half-map 2": half2, "mask": mask_path}, names=names,
                        also_writes=also_writes)
    m1, m2, mk, px = load_inputs(half1, half2, mask_path, pixel_size_angstrom=pixel_size_angstrom)
    t_read = time.perf_counter() - t0
    origin = m1.origin
    lf = LocalFilter(m1.data.shape, pixel_size_angstrom=px, mask=None if mk is None else mk.data,
                     params=params, workers=workers, backend=backend)
    # hand the arrays over: the engine drops them once it has their spectra (memory at 256^3)
    halves = [m1.data, m2.data]
    del m1, m2, mk
    with naming_engine_errors(half1, half2):
        result = lf.filter_owned(halves, progress=progress)
    t1 = time.perf_counter()
    summary = summarise(result, inputs={"half1": str(half1), "half2": str(half2),
                                        "mask": None if mask_path is None else str(mask_path)},
                        timings={"read": t_read}, mask=lf.mask)

    def draw(summary: dict[str, Any]) -> Mapping[str, Writer]:
        return report_files(summary=summary, raw=mean_of_halves(half1, half2), filtered=result.full,
                            local_resolution=result.local_resolution_angstrom, mask=lf.mask)

    write_outputs(result, outs, summary=summary, names=names, origin=origin, report=draw if report else None,
                  extra=extra_outputs)
    summary["timings_seconds"]["write"] = round(time.perf_counter() - t1, 4)
    return summary


def add_report(out_dir: Path, *, summary: dict[str, Any], raw: npt.NDArray[np.float32] | None,
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
    raw : (nz, ny, nx) ndarray or None
        The unfiltered map shown as "input" (the mean of the halves), if available.
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
