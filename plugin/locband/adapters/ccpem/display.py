"""What a finished CCP-EM job shows in Doppio: the report's content as the pipeliner's display objects."""

from __future__ import annotations

from typing import Any

from pipeliner.display_tools import (
    create_results_display_object,
    make_map_model_thumb_and_display,
    make_mrcs_central_slices_montage,
)

from locband.engine.params import FSC_THRESHOLDS
from locband.engine.units import cycles_to_angstrom
from locband.io.mrc import read_map
from locband.io.paths import is_file
from locband.report import cross_validation_curves, local_resolution_histogram
from locband.summary import fsc_text, within_text

__all__ = ["summary_table", "fsc_graph", "cross_validation_graph", "histogram", "map_slices"]


def summary_table(summary: dict[str, Any], path: str) -> Any:
    """The summary table: FSC resolutions, local resolution, bands, voxel size, box, version."""
    res = summary.get("local_resolution_angstrom") or {}

    def a(value: Any) -> str:
        return "-" if value is None else f"{float(value):.2f} Å"

    masked = (summary.get("fsc") or {}).get("masked") is not None
    rows = [[f"FSC = {t} ({which})", fsc_text(summary, which, key)]  # honest about bounds, as the report
            for key, t in FSC_THRESHOLDS.items() for which in ("unmasked", "masked")
            if which == "unmasked" or masked]
    rows += [[f"local resolution, median ({res.get('within', '')})", a(res.get("p50"))],
            ["local resolution, 5-95 %", f"{a(res.get('p5'))} - {a(res.get('p95'))}"],
            ["bands", str(summary.get("n_bands"))],
            ["voxel size", f"{float(summary['pixel_size_angstrom']):.4f} Å"],
            ["box (x, y, z)", " x ".join(str(n) for n in reversed(summary.get("shape_zyx") or []))],
            ["locband version", str(summary.get("locband_version"))]]
    return create_results_display_object("table", title="locband summary", headers=["", "value"],
                                         table_data=rows, associated_data=[path])


def fsc_graph(summary: dict[str, Any], path: str) -> Any:
    """The global FSC of the input halves against spatial frequency in 1/Å, with 0.143 and 0.5."""
    px = float(summary["pixel_size_angstrom"])
    xs: list[list[float]] = []
    ys: list[list[float]] = []
    labels: list[str] = []
    for which in ("unmasked", "masked"):
        curve = (summary.get("fsc") or {}).get(which)
        if not curve:
            continue
        resolution = cycles_to_angstrom(curve["frequency_cycles_per_voxel"], pixel_size_angstrom=px)
        xs.append([float(1.0 / r) for r in resolution])  # 1/inf = 0 at DC
        ys.append([float(v) for v in curve["fsc"]])
        labels.append(f"{which}: FSC=0.143 {fsc_text(summary, which, '0143')}")
    nyquist = float(1.0 / cycles_to_angstrom(0.5, pixel_size_angstrom=px))
    for threshold in FSC_THRESHOLDS.values():
        xs.append([0.0, nyquist])
        ys.append([threshold, threshold])
        labels.append(f"FSC = {threshold:g}")
    return create_results_display_object(
        "graph", title="Global FSC of the input half-maps", xvalues=xs, yvalues=ys, data_series_labels=labels,
        xaxis_label="spatial frequency (1/Å)", yaxis_label="FSC", xrange=[0.0, nyquist], yrange=[-0.1, 1.05],
        associated_data=[path])


def cross_validation_graph(summary: dict[str, Any], path: str) -> Any:
    """An interpretation map's cross-validation, as the report draws it: each processed half against the raw other half.

    The mean of both directions for the denoised halves and for the linear filter's, next to the
    raw half-map FSC (masked when the run had a mask), against spatial frequency in 1/Å.
    """
    px = float(summary["pixel_size_angstrom"])
    which, curves = cross_validation_curves(summary)
    raw = (summary.get("fsc") or {}).get(which) or {}
    series = [(f"raw half-maps ({which})", raw.get("frequency_cycles_per_voxel", []), raw.get("fsc", [])),
              *((f"{name} half vs raw other half ({which})", f, v) for name, f, v in curves)]
    nyquist = float(1.0 / cycles_to_angstrom(0.5, pixel_size_angstrom=px))
    xs = [[float(x) / px for x in f] for _, f, _ in series]  # cycles/voxel -> 1/Å
    return create_results_display_object(
        "graph", title="Cross-validation: what the processing added (not a resolution)", xvalues=xs,
        yvalues=[[float(y) for y in v] for _, _, v in series], data_series_labels=[name for name, _, _ in series],
        xaxis_label="spatial frequency (1/Å)", yaxis_label="FSC", xrange=[0.0, nyquist], yrange=[-0.1, 1.05],
        associated_data=[path])


def histogram(summary: dict[str, Any], local_res_path: str) -> Any:
    """The report's local-resolution histogram (voxels inside the mask, else the whole box)."""
    local_res = read_map(local_res_path, what="local-resolution map").data
    mask_path = (summary.get("inputs") or {}).get("mask")
    mask = read_map(mask_path, what="mask").data if mask_path and is_file(mask_path) else None
    counts, edges = local_resolution_histogram(local_res, mask)
    within = within_text(mask)
    return create_results_display_object(
        "histogram", title=f"Local resolution ({within})", bins=[int(c) for c in counts],
        bin_edges=[float(e) for e in edges], xlabel="local resolution (Å)", ylabel="voxels",
        associated_data=[local_res_path] + ([mask_path] if mask is not None else []))


def map_slices(output_dir: str, main: str, main_name: str, local_res: str) -> list[Any]:
    """Central slices of the main map and the local-resolution map, and the main map in the 3D viewer."""
    return [make_mrcs_central_slices_montage(in_files={main: main_name, local_res: "local resolution (Å)"},
                                             output_dir=output_dir),
            make_map_model_thumb_and_display(outputdir=output_dir, maps=[main], title=f"locband {main_name}")]
