"""The run report: ``report.png`` (one page) and ``report.pdf`` (that page plus the settings).

What a user checks first after a run, at a glance:

* the global FSC of the input halves, unmasked and masked, with 0.143 and 0.5 marked and the
  resolutions where the curves cross them; for an interpretation map (``locband denoise``) also
  the cross-validation curves (each processed half against the raw other half, denoised and
  linear), from ``summary["cross_validation"]``;
* the histogram of local resolution (voxels with mask > 0.5, or the whole box without a mask);
* central slices (xy and xz) of the input (mean of the halves), the filtered map and the local
  resolution in colour (blue = finer).

Drawn with matplotlib's object API on the Agg canvas (``Figure`` + ``FigureCanvasAgg``, and
``PdfPages`` for the PDF): pyplot's global state is never touched, so the report is safe inside
a host program or a notebook. The report is part of a run's output set
(:class:`locband.io.outputs.OutputSet`): ``locband filter`` writes it with the maps, and
``locband report`` adds a redrawn one to a complete set only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["REPORT_NAMES", "write_report", "report_from_files", "render_report", "local_resolution_histogram",
           "report_outputs"]

#: file names of the report inside the output folder
REPORT_NAMES = {"png": "report.png", "pdf": "report.pdf"}

_HIST_BINS = 40
_PNG_DPI = 100
#: histogram and colour range use an even stride of at most this many voxels (memory at 256^3+)
_MAX_SAMPLES = 2_000_000


def _central_slices(vol: npt.NDArray[np.floating[Any]]) -> list[npt.NDArray[np.floating[Any]]]:
    """Return the central xy slice (fixed z) and xz slice (fixed y) of a (nz, ny, nx) volume."""
    nz, ny, _ = vol.shape
    return [np.asarray(vol[nz // 2]), np.asarray(vol[:, ny // 2, :])]


def _sample(local_res: npt.NDArray[np.floating[Any]], inside: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.floating[Any]], int]:
    """Finite local-resolution values inside the mask, evenly strided down to ``_MAX_SAMPLES``.

    Returns the values and the stride (each sampled voxel stands for ``stride`` voxels).
    """
    stride = max(1, -(-local_res.size // _MAX_SAMPLES))
    values = np.asarray(local_res).ravel()[::stride][np.asarray(inside).ravel()[::stride]]
    return values[np.isfinite(values)], stride


def _inside(mask: npt.NDArray[np.floating[Any]] | None, shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    return np.ones(shape, dtype=bool) if mask is None else np.asarray(mask) > 0.5


def _curve(summary: dict[str, Any], which: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    c = (summary.get("fsc") or {}).get(which)
    if not c:
        return None
    return np.asarray(c["frequency_cycles_per_voxel"], dtype=float), np.asarray(c["fsc"], dtype=float)


def _draw_fsc(ax: Any, summary: dict[str, Any]) -> None:
    from locband.pipeline import fsc_text

    px = float(summary["pixel_size_angstrom"])
    styles = {"unmasked": ("tab:blue", "-"), "masked": ("tab:red", "-")}
    for which, (colour, ls) in styles.items():
        curve = _curve(summary, which)
        if curve is None:
            continue
        freq, fsc = curve
        r0143 = (summary.get("fsc_0143_angstrom") or {}).get(which)
        # honest about bounds: "<= 3.00 Å (...)" at the last shell, "not reached (...)" without a crossing
        label = f"{which}: FSC=0.143 {fsc_text(summary, which, '0143')}, 0.5 {fsc_text(summary, which, '05')}"
        ax.plot(freq / px, fsc, color=colour, ls=ls, lw=1.5, label=label)
        if r0143 is not None:
            ax.axvline(1.0 / r0143, color=colour, ls=":", lw=1)
    for thr, colour in ((0.143, "0.3"), (0.5, "0.6")):
        ax.axhline(thr, color=colour, ls="--", lw=1)
        ax.annotate(f"{thr:g}", xy=(1.0, thr), xycoords=("axes fraction", "data"), xytext=(2, 0),
                    textcoords="offset points", va="center", fontsize=8, color=colour)
    _draw_cross_validation(ax, summary, px)
    ax.set_xlim(0, 0.5 / px)
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC of the input halves")
    ax.set_title("Global FSC", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)


def _histogram(values: npt.NDArray[np.floating[Any]], stride: int) -> tuple[npt.NDArray[np.int64],
                                                                             npt.NDArray[np.float64]]:
    counts, edges = np.histogram(values, bins=_HIST_BINS)
    # a strided sample stands for `stride` voxels each: the counts stay those of the volume
    return counts.astype(np.int64) * stride, edges.astype(np.float64)


def local_resolution_histogram(local_resolution: npt.NDArray[np.floating[Any]],
                               mask: npt.NDArray[np.floating[Any]] | None) -> tuple[npt.NDArray[np.int64],
                                                                                    npt.NDArray[np.float64]]:
    """The report's histogram of local resolution, as numbers (for hosts that draw their own).

    Parameters
    ----------
    local_resolution : (nz, ny, nx) ndarray
        Local resolution in Å (``local_resolution.mrc``).
    mask : (nz, ny, nx) ndarray or None
        Soft mask; voxels with mask > 0.5 are counted, the whole box without a mask.

    Returns
    -------
    counts : (n,) ndarray of int64
        Voxels per bin (above 2 million voxels an even stride is sampled and scaled back up).
    edges : (n + 1,) ndarray of float64
        Bin edges in Å. Both arrays are empty when no voxel is selected.
    """
    values, stride = _sample(local_resolution, _inside(mask, local_resolution.shape))
    if values.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return _histogram(values, stride)


def _draw_cross_validation(ax: Any, summary: dict[str, Any], px: float) -> None:
    """Processed half vs raw other half (mean of both directions), denoised and linear."""
    cv = summary.get("cross_validation") or {}
    which = "masked" if cv.get("masked") else "unmasked"
    curves = cv.get(which)
    if not curves:
        return
    styles = (("", "tab:green", "-", "denoised"), ("linear_", "tab:gray", "--", "linear filter"))
    for prefix, colour, ls, text in styles:
        pair = [curves.get(f"{prefix}{k}") for k in ("half1_vs_raw_half2", "half2_vs_raw_half1")]
        if not all(pair):
            continue
        freq = np.asarray(pair[0]["frequency_cycles_per_voxel"], dtype=float)
        mean = 0.5 * (np.asarray(pair[0]["fsc"], dtype=float) + np.asarray(pair[1]["fsc"], dtype=float))
        ax.plot(freq / px, mean, color=colour, ls=ls, lw=1.2,
                label=f"{text} half vs raw other half ({which})")


def _draw_histogram(ax: Any, local_res: npt.NDArray[np.floating[Any]], inside: npt.NDArray[np.bool_],
                    within: str) -> None:
    values, stride = _sample(local_res, inside)
    if values.size == 0:
        ax.text(0.5, 0.5, "no voxels", ha="center", va="center", transform=ax.transAxes)
        return
    counts, edges = _histogram(values, stride)
    ax.hist(edges[:-1], bins=edges, weights=counts, color="tab:purple", alpha=0.8)  # bars of the counts above
    med = float(np.median(values))
    ax.axvline(med, color="k", ls="--", lw=1, label=f"median {med:.2f} Å")
    ax.set_xlabel("local resolution (Å)")
    ax.set_ylabel("voxels")
    ax.set_title(f"Local resolution ({within})", fontsize=10)
    ax.legend(fontsize=8)


def _grey(ax: Any, img: npt.NDArray[np.floating[Any]] | None, title: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    if img is None:
        ax.text(0.5, 0.5, "input not available", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        return
    lo, hi = np.percentile(img, [1, 99.5])
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower", interpolation="nearest")


def render_report(*, summary: dict[str, Any], raw: npt.NDArray[np.floating[Any]] | None,
                  filtered: npt.NDArray[np.floating[Any]], local_resolution: npt.NDArray[np.floating[Any]],
                  mask: npt.NDArray[np.floating[Any]] | None) -> Any:
    """Draw the report page; returns a ``matplotlib.figure.Figure`` (on an Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.7, 8.3))
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(3, 3, left=0.06, right=0.92, bottom=0.04, top=0.90, hspace=0.35, wspace=0.3,
                          height_ratios=[1.2, 1, 1])
    _draw_fsc(fig.add_subplot(gs[0, :2]), summary)
    inside = _inside(mask, local_resolution.shape)
    within = "mask > 0.5" if mask is not None else "whole box"
    _draw_histogram(fig.add_subplot(gs[0, 2]), local_resolution, inside, within)
    sel, _ = _sample(local_resolution, inside)
    vmin, vmax = (np.percentile(sel, [2, 98]) if sel.size else (0.0, 1.0))
    vmax = vmax if vmax > vmin else vmin + 1e-3
    raw_slices = _central_slices(raw) if raw is not None else [None, None]
    names = ["xy (central z)", "xz (central y)"]
    image = None
    panels = zip(raw_slices, _central_slices(filtered), _central_slices(local_resolution),
                 [sl.astype(np.float32) for sl in _central_slices(inside)], names, strict=True)
    for row, (rs, fs, ls, ins, name) in enumerate(panels, start=1):
        _grey(fig.add_subplot(gs[row, 0]), rs, f"input (mean of halves), {name}")
        _grey(fig.add_subplot(gs[row, 1]), fs, f"{summary.get('map_label', 'filtered')}, {name}")
        ax = fig.add_subplot(gs[row, 2])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"local resolution, {name}", fontsize=9)
        ax.imshow(fs, cmap="gray", origin="lower", interpolation="nearest")
        shown = np.ma.masked_where(ins < 0.5, ls)
        image = ax.imshow(shown, cmap="turbo", vmin=vmin, vmax=vmax, origin="lower", interpolation="nearest",
                          alpha=0.85)
    if image is not None:
        cax = fig.add_axes((0.935, 0.1, 0.012, 0.45))
        fig.colorbar(image, cax=cax, label="Å")
    res = summary.get("local_resolution_angstrom") or {}
    title = (f"locband {summary.get('locband_version', '')}: box {'x'.join(str(s) for s in filtered.shape[::-1])}, "
             f"{float(summary['pixel_size_angstrom']):.3f} Å/voxel, {summary.get('n_bands', '?')} bands")
    if "p50" in res:
        title += f" | local resolution median {res['p50']:.2f} Å (5-95 %: {res['p5']:.2f}-{res['p95']:.2f} Å)"
    fig.suptitle(title, fontsize=11)
    return fig


def _settings_page(summary: dict[str, Any]) -> Any:
    """Second PDF page: inputs, settings and timings as text."""
    import json

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.3, 11.7))
    FigureCanvasAgg(fig)
    keep = {k: summary.get(k) for k in ("locband_version", "inputs", "pixel_size_angstrom", "shape_zyx", "settings",
                                         "n_bands", "fsc_0143_angstrom", "fsc_05_angstrom", "fsc_crossing",
                                         "local_resolution_angstrom", "timings_seconds", "outputs")}
    text = json.dumps(keep, indent=1, default=str)
    fig.text(0.05, 0.97, "Run settings and numbers (from summary.json)", fontsize=12, va="top")
    fig.text(0.05, 0.94, text, fontsize=6.5, family="monospace", va="top")
    return fig


def report_outputs(*, summary: dict[str, Any], raw: npt.NDArray[np.floating[Any]] | None,
                   filtered: npt.NDArray[np.floating[Any]], local_resolution: npt.NDArray[np.floating[Any]],
                   mask: npt.NDArray[np.floating[Any]] | None) -> dict[str, Callable[[Path], object]]:
    """Draw the report now; returns ``{file name: writer(path)}`` for an output set.

    The figures are drawn here (the arrays are not kept); the writers only save them, so the
    report joins the other outputs of a run in one :class:`locband.io.outputs.OutputSet`.
    """
    fig = render_report(summary=summary, raw=raw, filtered=filtered, local_resolution=local_resolution, mask=mask)
    settings = _settings_page(summary)

    def write_pdf(path: Path) -> None:
        from matplotlib.backends.backend_pdf import PdfPages

        with PdfPages(path, metadata={"Creator": "locband", "Subject": f"locband run {summary.get('run_id', '')}"}) \
                as pdf:
            pdf.savefig(fig)
            pdf.savefig(settings)

    return {REPORT_NAMES["png"]: lambda p: fig.savefig(p, format="png", dpi=_PNG_DPI), REPORT_NAMES["pdf"]: write_pdf}


def write_report(out_dir: Path, *, summary: dict[str, Any], raw: np.ndarray | None, result: Any,
                 mask: np.ndarray | None, inputs: dict[str, str | None] | None = None) -> list[Path]:
    """Add ``report.png`` and ``report.pdf`` to the complete output set in ``out_dir``; returns their paths.

    Parameters
    ----------
    out_dir : Path
        Output folder of a finished run: it must hold a complete set
        (:func:`locband.io.outputs.require_complete_set`); the report joins it.
    summary : dict
        The run's summary (as written to ``summary.json``).
    raw : (nz, ny, nx) ndarray or None
        The unfiltered map shown as "input" (the mean of the halves).
    result : FilterResult or None
        The engine's result; with None, ``filtered.mrc`` and ``local_resolution.mrc`` are read
        from ``out_dir``.
    mask : (nz, ny, nx) ndarray or None
        Soft mask; the histogram and the colour overlay use voxels with mask > 0.5.
    inputs : dict, optional
        The files the report was drawn from (what -> path): the report never replaces one.

    Raises
    ------
    InputFileError
        ``out_dir`` holds an incomplete set, a report name is an input, or a write error.
    """
    from locband.io.outputs import OutputSet

    out = Path(out_dir)
    outs = OutputSet(out, inputs=inputs, owned=REPORT_NAMES.values(), extend=True)
    outs.check()
    if result is not None:
        filtered, local_res = result.full, result.local_resolution_angstrom
    else:
        from locband.io.mrc import read_map
        from locband.pipeline import OUTPUT_NAMES

        filtered = read_map(out / OUTPUT_NAMES["full"], what="filtered map").data
        local_res = read_map(out / OUTPUT_NAMES["local_resolution"], what="local-resolution map").data
    for name, writer in report_outputs(summary=summary, raw=raw, filtered=filtered, local_resolution=local_res,
                                       mask=mask).items():
        outs.add(name, writer)
    return outs.commit()


def report_from_files(out_dir: str | os.PathLike[str], *, half1: str | None = None, half2: str | None = None,
                      mask: str | None = None) -> list[Path]:
    """Regenerate the report of a finished run from the files in ``out_dir``.

    The input half-maps and mask are those named in ``summary.json`` unless given here; if the
    half-maps cannot be found the input panels say so and the rest is drawn.

    Raises
    ------
    InputFileError
        ``out_dir`` holds no readable ``summary.json``, ``filtered.mrc`` or ``local_resolution.mrc``,
        holds an incomplete set (a run was killed while replacing its files), or a report name
        is one of the inputs.
    """
    from locband.io.errors import InputFileError
    from locband.io.mrc import read_map
    from locband.io.outputs import OutputSet, require_complete_set
    from locband.io.summary import read_json
    from locband.pipeline import OUTPUT_NAMES

    out = Path(out_dir)
    if not out.is_dir():
        raise InputFileError(f"output folder {str(out)!r} does not exist or is not a folder")
    spath = out / OUTPUT_NAMES["summary"]
    try:
        summary = read_json(spath)
    except FileNotFoundError:
        raise InputFileError(f"{str(spath)!r} does not exist: expected the output folder of a locband run") from None
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{str(spath)!r} is not a readable locband summary: {exc}") from None
    for key in ("pixel_size_angstrom", "fsc"):
        if key not in summary:
            raise InputFileError(f"{str(spath)!r} has no {key!r}: expected the summary.json of a locband run")
    inputs = summary.get("inputs") or {}
    h1, h2 = half1 or inputs.get("half1"), half2 or inputs.get("half2")
    mpath = mask or inputs.get("mask")
    named = {"half-map 1": h1, "half-map 2": h2, "mask": mpath}
    # before reading anything: the redrawn report must not replace an input, and the folder
    # must hold one complete set (a run killed while replacing its files is refused here)
    OutputSet(out, inputs=named, owned=REPORT_NAMES.values(), extend=True).check()
    require_complete_set(out, ignore=REPORT_NAMES.values())
    raw = None
    if h1 and h2 and Path(h1).is_file() and Path(h2).is_file():
        raw = (read_map(h1, what="half-map 1").data + read_map(h2, what="half-map 2").data) * np.float32(0.5)
    mk = read_map(mpath, what="mask").data if mpath and Path(mpath).is_file() else None
    return write_report(out, summary=summary, raw=raw, result=None, mask=mk, inputs=named)
