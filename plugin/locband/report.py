"""The run report: ``report.png`` (one page) and ``report.pdf`` (that page plus the settings).

What a user checks first after a run, at a glance:

* the global FSC of the input halves, unmasked and masked, with 0.143 and 0.5 marked and the
  resolutions where the curves cross them; for an interpretation map (``locband denoise``) also
  the cross-validation curves (each processed half against the raw other half, denoised and
  linear), from ``summary["cross_validation"]``;
* the histogram of local resolution (voxels with mask > 0.5, or the whole box without a mask);
* central slices (xy and xz) of the input (mean of the halves), the filtered map and the local
  resolution in colour (blue = finer).

Drawn from arrays and the run's summary, never from files, with matplotlib's object API on the
Agg canvas (``Figure`` + ``FigureCanvasAgg``): pyplot's global state is never touched, so the
report is safe inside a host program or a notebook. :func:`report_files` returns writers for
the run's output set (:class:`locband.io.outputs.OutputSet`), which :mod:`locband.io.figures`
carry out; :mod:`locband.pipeline` adds them to a run's set or to a finished one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine.params import FSC_THRESHOLDS
from locband.io.figures import write_pdf, write_png
from locband.summary import fsc_text, inside_mask, within_text

__all__ = ["CentralSlices", "RawMap", "render_report", "settings_page", "report_files", "local_resolution_histogram",
           "cross_validation_curves"]

_HIST_BINS = 40
_PNG_DPI = 100
#: histogram and colour range use an even stride of at most this many voxels (memory at 256^3+)
_MAX_SAMPLES = 2_000_000
#: summary keys shown on the PDF's settings page
_SETTINGS_KEYS = ("locband_version", "inputs", "pixel_size_angstrom", "shape_zyx", "settings", "n_bands",
                  "fsc_0143_angstrom", "fsc_05_angstrom", "fsc_crossing", "local_resolution_angstrom",
                  "timings_seconds", "outputs")


@dataclass(frozen=True)
class CentralSlices:
    """All the report shows of a volume: its central xy section (fixed z) and xz section (fixed y).

    Given instead of the volume where the volume is not at hand anyway (the input, read back from
    its files for the report: a 512^3 map is 0.5 GiB, its two sections 2 MiB).

    Attributes
    ----------
    xy : (ny, nx) ndarray
        Section ``z = nz // 2``.
    xz : (nz, nx) ndarray
        Section ``y = ny // 2``.
    """

    xy: npt.NDArray[np.floating[Any]]
    xz: npt.NDArray[np.floating[Any]]


#: what the report takes as its input map: the volume, or only the sections it shows
RawMap = npt.NDArray[np.floating[Any]] | CentralSlices


def _central_slices(vol: RawMap | npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
    """Return the central xy slice (fixed z) and xz slice (fixed y) of a (nz, ny, nx) volume."""
    if isinstance(vol, CentralSlices):
        return [np.asarray(vol.xy), np.asarray(vol.xz)]
    nz, ny, _ = vol.shape
    return [np.asarray(vol[nz // 2]), np.asarray(vol[:, ny // 2, :])]


def _sample(local_res: npt.NDArray[np.floating[Any]],
            inside: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.floating[Any]], int]:
    """Finite local-resolution values inside the mask, evenly strided down to ``_MAX_SAMPLES``.

    Returns the values and the stride (each sampled voxel stands for ``stride`` voxels).
    """
    stride = max(1, -(-local_res.size // _MAX_SAMPLES))
    values = np.asarray(local_res).ravel()[::stride][np.asarray(inside).ravel()[::stride]]
    return values[np.isfinite(values)], stride


def _curve(summary: dict[str, Any], which: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    c = (summary.get("fsc") or {}).get(which)
    if not c:
        return None
    return np.asarray(c["frequency_cycles_per_voxel"], dtype=float), np.asarray(c["fsc"], dtype=float)


def _draw_fsc(ax: Any, summary: dict[str, Any]) -> None:
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
    for thr, colour in zip(FSC_THRESHOLDS.values(), ("0.3", "0.6"), strict=True):
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
    values, stride = _sample(local_resolution, inside_mask(mask, local_resolution.shape))
    if values.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return _histogram(values, stride)


def cross_validation_curves(summary: dict[str, Any]) -> tuple[str, list[tuple[str, list[float], list[float]]]]:
    """The cross-validation curves of an interpretation map's summary, as the report draws them.

    Returns ``(which, [(name, frequency_cycles_per_voxel, fsc), ...])``: ``which`` is ``masked``
    when the run had a mask, and each curve the mean of both directions (processed half 1 vs
    raw half 2, processed half 2 vs raw half 1), ``denoised`` then ``linear filter``; no
    curves for a summary without cross-validation (``locband filter``'s).
    """
    cv = summary.get("cross_validation") or {}
    which = "masked" if cv.get("masked") else "unmasked"
    curves = cv.get(which) or {}
    out = []
    for prefix, name in (("", "denoised"), ("linear_", "linear filter")):
        a, b = (curves.get(f"{prefix}{k}") for k in ("half1_vs_raw_half2", "half2_vs_raw_half1"))
        if a and b:
            mean = 0.5 * (np.asarray(a["fsc"], dtype=float) + np.asarray(b["fsc"], dtype=float))
            out.append((name, [float(f) for f in a["frequency_cycles_per_voxel"]], [float(v) for v in mean]))
    return which, out


def _draw_cross_validation(ax: Any, summary: dict[str, Any], px: float) -> None:
    """Processed half vs raw other half (mean of both directions), denoised and linear."""
    which, curves = cross_validation_curves(summary)
    styles = {"denoised": ("tab:green", "-"), "linear filter": ("tab:gray", "--")}
    for name, freq, mean in curves:
        colour, ls = styles[name]
        ax.plot(np.asarray(freq) / px, mean, color=colour, ls=ls, lw=1.2,
                label=f"{name} half vs raw other half ({which})")


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


def render_report(*, summary: dict[str, Any], raw: RawMap | None,
                  filtered: npt.NDArray[np.floating[Any]], local_resolution: npt.NDArray[np.floating[Any]],
                  mask: npt.NDArray[np.floating[Any]] | None) -> Any:
    """Draw the report page; returns a ``matplotlib.figure.Figure`` (on an Agg canvas)."""
    fig = _figure((11.7, 8.3))
    gs = fig.add_gridspec(3, 3, left=0.06, right=0.92, bottom=0.04, top=0.90, hspace=0.35, wspace=0.3,
                          height_ratios=[1.2, 1, 1])
    _draw_fsc(fig.add_subplot(gs[0, :2]), summary)
    inside = inside_mask(mask, local_resolution.shape)
    within = within_text(mask)
    _draw_histogram(fig.add_subplot(gs[0, 2]), local_resolution, inside, within)
    _draw_slices(fig, gs, raw=raw, filtered=filtered, local_resolution=local_resolution, inside=inside,
                 map_label=str(summary.get("map_label", "filtered")))
    res = summary.get("local_resolution_angstrom") or {}
    title = (f"locband {summary.get('locband_version', '')}: box {'x'.join(str(s) for s in filtered.shape[::-1])}, "
             f"{float(summary['pixel_size_angstrom']):.3f} Å/voxel, {summary.get('n_bands', '?')} bands")
    if "p50" in res:
        title += f" | local resolution median {res['p50']:.2f} Å (5-95 %: {res['p5']:.2f}-{res['p95']:.2f} Å)"
    fig.suptitle(title, fontsize=11)
    return fig


def _draw_slices(fig: Any, gs: Any, *, raw: RawMap | None,
                 filtered: npt.NDArray[np.floating[Any]], local_resolution: npt.NDArray[np.floating[Any]],
                 inside: npt.NDArray[np.bool_], map_label: str) -> None:
    """Rows 1 and 2: central xy and xz slices of the input, the filtered map and the local resolution."""
    sel, _ = _sample(local_resolution, inside)
    vmin, vmax = (np.percentile(sel, [2, 98]) if sel.size else (0.0, 1.0))
    vmax = vmax if vmax > vmin else vmin + 1e-3
    raw_slices = _central_slices(raw) if raw is not None else [None, None]
    names = ["xy (central z)", "xz (central y)"]
    image = None
    panels = zip(raw_slices, _central_slices(filtered), _central_slices(local_resolution), _central_slices(inside),
                 names, strict=True)
    for row, (rs, fs, ls, ins, name) in enumerate(panels, start=1):
        _grey(fig.add_subplot(gs[row, 0]), rs, f"input (mean of halves), {name}")
        _grey(fig.add_subplot(gs[row, 1]), fs, f"{map_label}, {name}")
        ax = fig.add_subplot(gs[row, 2])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"local resolution, {name}", fontsize=9)
        ax.imshow(fs, cmap="gray", origin="lower", interpolation="nearest")
        image = ax.imshow(np.ma.masked_where(~ins, ls), cmap="turbo", vmin=vmin, vmax=vmax, origin="lower",
                          interpolation="nearest", alpha=0.85)
    if image is not None:
        cax = fig.add_axes((0.935, 0.1, 0.012, 0.45))
        fig.colorbar(image, cax=cax, label="Å")


def _figure(size: tuple[float, float]) -> Any:
    """A ``matplotlib.figure.Figure`` on its own Agg canvas (no pyplot state)."""
    # matplotlib is imported when a report is drawn: the commands that never draw one (the RELION
    # hook runs once per half and iteration) do not pay for its import
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def settings_page(summary: dict[str, Any]) -> Any:
    """Second PDF page: inputs, settings and timings from the summary, as text."""
    fig = _figure((8.3, 11.7))
    text = json.dumps({k: summary.get(k) for k in _SETTINGS_KEYS}, indent=1, default=str)
    fig.text(0.05, 0.97, "Run settings and numbers (from summary.json)", fontsize=12, va="top")
    fig.text(0.05, 0.94, text, fontsize=6.5, family="monospace", va="top")
    return fig


def report_files(*, summary: dict[str, Any], raw: RawMap | None,
                 filtered: npt.NDArray[np.floating[Any]], local_resolution: npt.NDArray[np.floating[Any]],
                 mask: npt.NDArray[np.floating[Any]] | None) -> dict[str, Callable[[Path], object]]:
    """Draw the report now; returns output kind (``report_png``, ``report_pdf``) -> ``writer(path)``.

    The figures are drawn here (the arrays are not kept); the writers only save them, so the
    report joins the other outputs of a run in one :class:`locband.io.outputs.OutputSet`.
    """
    page = render_report(summary=summary, raw=raw, filtered=filtered, local_resolution=local_resolution, mask=mask)
    settings = settings_page(summary)
    metadata = {"Creator": "locband", "Subject": f"locband run {summary.get('run_id', '')}"}
    return {"report_png": lambda p: write_png(p, page, dpi=_PNG_DPI),
            "report_pdf": lambda p: write_pdf(p, [page, settings], metadata=metadata)}
