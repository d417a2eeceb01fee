"""CCP-EM pipeliner (Doppio) jobs: locband beside LAFTER and LocScale.

The CCP-EM pipeliner (``pip install 'locband[ccpem]'``) finds job classes through the
``ccpem_pipeliner.jobs`` entry-point group (``pyproject.toml``); Doppio, the ``pipeliner``
command line and automated pipelines then offer them as they offer the pipeliner's own
``lafter.postprocess.local_denoising`` and ``locscale.postprocess.local_sharpening``.

Each job is thin: it declares its options, checks them, and returns the ``locband <subcommand>``
command line that the pipeliner's job runner executes in the project folder, writing into the
job folder (``LocBand/jobNNN/``). After the run it describes the results for the GUI (summary
table, global FSC, local-resolution histogram, map slices, 3D viewer, the PNG report). A job is
one small subclass of :class:`LocbandJob`: a process name, a subcommand, an option table and an
output table.

Option table of ``locband.postprocess.local_filter`` (:data:`FILTER_OPTIONS`; defaults shown in
the GUI are those of :class:`~locband.engine.params.FilterParams`)::

    job option           locband filter       kind
    half_map_1           HALF1                half-map (DensityMap node, keyword halfmap)
    half_map_2           HALF2                half-map
    mask                 --mask               optional mask (Mask3D node)
    pixel_size           --pixel-size         number, blank = from the MRC header
    band_ratio           --band-ratio         number (FilterParams.band_ratio)
    window_wavelengths   --window-wavelengths number (FilterParams.window_wavelengths)
    noise_threshold      --noise-threshold    number (FilterParams.noise_threshold)
    criterion            --criterion          number (FilterParams.criterion)
    apply_mask           --apply-mask         yes/no (FilterParams.apply_mask)
    band_snr             --band-snr           yes/no (FilterParams.keep_band_snr)
    fft_backend          --fft-backend        auto / pyfftw / scipy
    device               --device             auto (= cpu) / cpu / cuda
    report               --no-report          yes/no, the flag is given for "no"
    nr_threads           --threads            the pipeliner's own "Number of threads"

The job always adds ``--out-dir <job folder>`` and ``--quiet`` (no progress lines in run.err).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeliner.display_tools import (
    create_results_display_object,
    make_map_model_thumb_and_display,
    make_mrcs_central_slices_montage,
)
from pipeliner.job_options import (
    BooleanJobOption,
    FileDescription,
    FloatJobOption,
    InputNodeJobOption,
    JobOption,
    JobOptionCondition,
    JobOptionValidationResult,
    MultipleChoiceJobOption,
)
from pipeliner.nodes import NODE_DENSITYMAP, NODE_IMAGE3D, NODE_LOGFILE, NODE_MASK3D, NODE_PROCESSDATA
from pipeliner.pipeliner_job import ExternalProgram, PipelinerCommand, PipelinerJob, Ref

from locband import __version__
from locband.engine.params import FilterParams
from locband.io.errors import InputFileError
from locband.pipeline import OUTPUT_NAMES
from locband.report import REPORT_NAMES

__all__ = ["Option", "Output", "FILTER_OPTIONS", "FILTER_OUTPUTS", "LocbandJob", "LocbandFilterJob",
           "build_arguments", "locband_executable", "params_from_values"]

_MAP_FILES = FileDescription("3D map", [".mrc", ".map"])
_SETTINGS = "Filter settings"
_AUTO = "auto"


@dataclass(frozen=True)
class Option:
    """One job option and the ``locband`` argument it becomes.

    Attributes
    ----------
    flag : str
        The ``locband`` flag (``--band-ratio``), or the metavar of a positional argument
        (``HALF1``).
    kind : str
        ``halfmap`` (required map input), ``mask`` (optional mask input), ``number`` (blank
        leaves the flag out), ``switch`` (the flag is given for yes), ``no-switch`` (the flag is
        given for no), ``choice`` (``auto`` leaves the flag out) or ``threads`` (the
        pipeliner's own ``nr_threads``).
    label : str
        Label in the GUI.
    help : str
        Help text in the GUI.
    params_field : str or None
        The :class:`~locband.engine.params.FilterParams` field whose default the option shows
        and which the option sets; None for options that are not engine settings.
    choices : tuple of str
        Values of a ``choice`` option besides ``auto``.
    step : float
        Step of a ``number`` slider in the GUI.
    group : str
        Group of options in the GUI.
    """

    flag: str
    kind: str
    label: str
    help: str
    params_field: str | None = None
    choices: tuple[str, ...] = ()
    step: float = 0.01
    group: str = "Main"


@dataclass(frozen=True)
class Output:
    """One output file of a job and its pipeliner node.

    Attributes
    ----------
    name : str
        File name inside the job folder.
    node_type : str
        Top-level node type (``DensityMap``, ``Image3D``, ...).
    keywords : tuple of str
        Node keywords: the full type is ``<node_type>.<format>.<keywords joined by dots>``.
    only_if : str or None
        A yes/no job option that must be yes for the file to be written.
    """

    name: str
    node_type: str
    keywords: tuple[str, ...]
    only_if: str | None = None


#: job option -> locband filter argument (see the module docstring)
FILTER_OPTIONS: dict[str, Option] = {
    "half_map_1": Option("HALF1", "halfmap", "Half map 1",
                         "First unfiltered half-map (MRC), e.g. run_half1_class001_unfil.mrc of a 3D refinement."),
    "half_map_2": Option("HALF2", "halfmap", "Half map 2", "Second unfiltered half-map (MRC)."),
    "mask": Option("--mask", "mask", "Mask (optional)",
                   "Soft mask in [0, 1] around the particle: gives the masked FSC and the local-resolution "
                   "histogram within the mask, and is applied to the outputs with 'Apply mask'. The filter "
                   "itself needs no mask."),
    "pixel_size": Option("--pixel-size", "number", "Pixel size (Å)",
                         "Voxel size in Å. Leave blank to take it from the half-map headers (--pixel-size)."),
    "band_ratio": Option("--band-ratio", "number", "Band ratio",
                         "Ratio between the centres of neighbouring frequency bands (> 1); the default, "
                         "2^(1/3), gives three bands per octave.", params_field="band_ratio", group=_SETTINGS),
    "window_wavelengths": Option("--window-wavelengths", "number", "Window (wavelengths)",
                                 "Gaussian sigma of the local window of each band, in wavelengths of the band "
                                 "(capped at 10 % of the box edge).", params_field="window_wavelengths",
                                 step=0.1, group=_SETTINGS),
    "noise_threshold": Option("--noise-threshold", "number", "Noise threshold (SD)",
                              "Local signal below this many standard deviations of its pure-noise fluctuation "
                              "is suppressed.", params_field="noise_threshold", step=0.1, group=_SETTINGS),
    "criterion": Option("--criterion", "number", "Local FSC criterion",
                        "Local half-map FSC threshold that defines the local resolution.",
                        params_field="criterion", step=0.001, group=_SETTINGS),
    "apply_mask": Option("--apply-mask", "switch", "Apply mask to outputs?",
                         "Multiply the filtered maps by the mask.", params_field="apply_mask", group=_SETTINGS),
    "band_snr": Option("--band-snr", "switch", "Write per-band SNR?",
                       "Also write band_snr.mrc, the local SNR of every band (a volume stack).",
                       params_field="keep_band_snr", group=_SETTINGS),
    "fft_backend": Option("--fft-backend", "choice", "FFT backend",
                          "FFT implementation; auto uses pyFFTW where it is installed.",
                          choices=("pyfftw", "scipy"), group=_SETTINGS),
    "device": Option("--device", "choice", "Device",
                     "Where to filter: auto = the CPU; cuda = an NVIDIA GPU (needs pip install 'locband[gpu]').",
                     choices=("cpu", "cuda"), group=_SETTINGS),
    "report": Option("--no-report", "no-switch", "Write report (PNG/PDF)?",
                     "Write report.png and report.pdf (FSC, local-resolution histogram, slices).", group=_SETTINGS),
    "nr_threads": Option("--threads", "threads", "Number of threads",
                         "FFT threads: give at most the number of idle cores."),
}

#: output kind -> file (as ``locband filter`` names it) and node
FILTER_OUTPUTS: dict[str, Output] = {
    "full": Output(OUTPUT_NAMES["full"], NODE_DENSITYMAP, ("locband", "localfilter")),
    "half1": Output(OUTPUT_NAMES["half1"], NODE_DENSITYMAP, ("locband", "localfilter", "halfmap")),
    "half2": Output(OUTPUT_NAMES["half2"], NODE_DENSITYMAP, ("locband", "localfilter", "halfmap")),
    "local_resolution": Output(OUTPUT_NAMES["local_resolution"], NODE_IMAGE3D, ("locband", "localresmap")),
    "band_snr": Output(OUTPUT_NAMES["band_snr"], NODE_IMAGE3D, ("locband", "bandsnr"), only_if="band_snr"),
    "summary": Output(OUTPUT_NAMES["summary"], NODE_PROCESSDATA, ("locband", "summary")),
    "report_pdf": Output(REPORT_NAMES["pdf"], NODE_LOGFILE, ("locband", "report"), only_if="report"),
}

_REFERENCES = [
    Ref(authors=["locband developers"],
        title="locband: local, band-wise filtering of cryo-EM half-maps (the method is described in the "
              "package README, 'Why local, why band-wise' and 'The method and its defaults')",
        journal="locband documentation", year="2026", version=__version__),
]


def locband_executable() -> str | None:
    """The ``locband`` console script of this installation, or None if there is none.

    The one beside the Python that runs the pipeliner comes first (it belongs to the same
    installation as this module, even when that environment's ``bin`` is not on ``PATH``),
    then ``locband`` on ``PATH``.
    """
    beside = Path(sys.executable).parent / "locband"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("locband")


def _program() -> ExternalProgram:
    """The job's program, named ``locband`` (reports, citations) but run by its full path.

    Without an executable the pipeliner marks the job unavailable ("executable 'locband' not found").
    """
    exe = locband_executable()
    program = ExternalProgram(command="locband", name="locband", vers_com=[exe or "locband", "--version"])
    program.exe_path = exe
    return program


def _job_option(name: str, opt: Option, defaults: FilterParams) -> JobOption[Any]:
    """The pipeliner job option for one row of an option table."""
    default = getattr(defaults, opt.params_field) if opt.params_field else None
    common: dict[str, Any] = {"label": opt.label, "help_text": opt.help, "jobop_group": opt.group}
    if opt.kind == "halfmap":
        return InputNodeJobOption(node_type=NODE_DENSITYMAP, node_kwds=["halfmap"], pattern=_MAP_FILES,
                                  is_required=True, **common)
    if opt.kind == "mask":
        return InputNodeJobOption(node_type=NODE_MASK3D, pattern=_MAP_FILES, **common)
    if opt.kind == "number":
        return FloatJobOption(default_value=None if default is None else float(default), step_value=opt.step,
                              **common)
    if opt.kind == "switch":
        deactivate = JobOptionCondition([("mask", "=", "")]) if opt.params_field == "apply_mask" else None
        return BooleanJobOption(default_value=bool(default), deactivate_if=deactivate, **common)
    if opt.kind == "no-switch":
        return BooleanJobOption(default_value=True, **common)
    if opt.kind == "choice":
        return MultipleChoiceJobOption(choices=[_AUTO, *opt.choices], default_value=_AUTO, **common)
    raise ValueError(f"option {name!r}: unknown kind {opt.kind!r}")


def build_arguments(options: Mapping[str, Option], values: Mapping[str, Any]) -> list[str]:
    """The ``locband`` arguments for job option values; pure.

    Parameters
    ----------
    options : mapping
        An option table (:data:`FILTER_OPTIONS`).
    values : mapping
        Job option name -> value as the pipeliner holds it (str, float or None, bool, int).

    Returns
    -------
    list of str
        Positional arguments first, in table order, then the flags in table order.
    """
    positional: list[str] = []
    flags: list[str] = []
    for name, opt in options.items():
        value = values.get(name)
        if opt.kind == "halfmap":
            positional.append(str(value))
        elif opt.kind in ("mask", "number", "threads"):
            if value not in (None, ""):
                flags += [opt.flag, str(value)]
        elif opt.kind == "choice":
            if value not in (None, "", _AUTO):
                flags += [opt.flag, str(value)]
        elif (opt.kind == "switch" and value) or (opt.kind == "no-switch" and not value):
            flags.append(opt.flag)
    return positional + flags


def params_from_values(options: Mapping[str, Option], values: Mapping[str, Any]) -> FilterParams:
    """The :class:`~locband.engine.params.FilterParams` that job option values ask for.

    Raises
    ------
    ValueError
        A value out of range (locband's own message, naming the field).
    """
    kwargs = {opt.params_field: values[name] for name, opt in options.items()
              if opt.params_field and values.get(name) is not None}
    return FilterParams(**kwargs)


class LocbandJob(PipelinerJob):  # type: ignore[misc]  # the pipeliner ships no type information
    """A pipeliner job that runs one ``locband`` subcommand.

    Subclasses set :attr:`PROCESS_NAME`, :attr:`SUBCOMMAND`, :attr:`OPTIONS`, :attr:`OUTPUTS`,
    :attr:`MAIN_MAP` (the output shown in the 3D viewer) and the texts of :meth:`describe`, and
    register the class under ``ccpem_pipeliner.jobs`` in ``pyproject.toml``. The results display
    reads the outputs of kinds ``summary`` (a ``summary.json`` as ``locband filter`` writes it) and
    ``local_resolution``; a subcommand whose summary differs overrides
    :meth:`create_results_display`.
    """

    OUT_DIR = "LocBand"
    CATEGORY_LABEL = "Map Postprocessing"  # beside LAFTER and LocScale
    SUBCOMMAND = ""
    OPTIONS: Mapping[str, Option] = {}
    OUTPUTS: Mapping[str, Output] = {}
    MAIN_MAP = "full"
    #: the pipeliner's version of the job definition (not locband's version)
    JOB_VERSION = "1.0"

    def __init__(self) -> None:
        super().__init__()
        self.jobinfo.version = self.JOB_VERSION
        self.jobinfo.job_author = "locband developers"
        self.jobinfo.programs = [_program()]
        self.jobinfo.references = list(_REFERENCES)
        self.jobinfo.documentation = "locband README, section 'CCP-EM (Doppio, pipeliner)'"
        self.describe()
        defaults = FilterParams()
        for name, opt in self.OPTIONS.items():
            if opt.kind != "threads":
                self.joboptions[name] = _job_option(name, opt, defaults)
        self.get_runtab_options(threads=True)

    def describe(self) -> None:
        """Set the display name and descriptions in ``self.jobinfo`` (one override per job)."""

    # -- options ---------------------------------------------------------------------------------

    def _values(self) -> dict[str, Any]:
        return {name: self.joboptions[name].value for name in self.OPTIONS if name in self.joboptions}

    def additional_joboption_validation(self) -> list[JobOptionValidationResult]:
        """Check the settings and, where the files exist already, that the maps fit together.

        Uses locband's own checks: :class:`~locband.engine.params.FilterParams` for the
        settings, and the header cross-check that ``locband`` runs before it filters (shapes,
        voxel sizes), so the messages are those ``locband`` would print.
        """
        values = self._values()
        errors: list[JobOptionValidationResult] = []
        for name, opt in self.OPTIONS.items():  # one setting at a time: each error belongs to its option
            if opt.params_field and values.get(name) is not None:
                try:
                    params_from_values({name: opt}, values)
                except ValueError as exc:
                    errors.append(JobOptionValidationResult("error", [self.joboptions[name]], str(exc)))
        if not errors:
            try:  # and together, for any rule that ties settings to each other
                params_from_values(self.OPTIONS, values)
            except ValueError as exc:
                engine = [self.joboptions[n] for n, o in self.OPTIONS.items() if o.params_field]
                errors.append(JobOptionValidationResult("error", engine, str(exc)))
        maps = [n for n, o in self.OPTIONS.items() if o.kind in ("halfmap", "mask")]
        try:
            self._check_maps(values)
        except InputFileError as exc:
            errors.append(JobOptionValidationResult("error", [self.joboptions[n] for n in maps], str(exc)))
        return errors

    def _check_maps(self, values: Mapping[str, Any]) -> None:
        from locband.io.mrc import read_map_header
        from locband.pipeline import check_inputs_agree

        halves = [values[n] for n, o in self.OPTIONS.items() if o.kind == "halfmap"]
        masks = [values[n] for n, o in self.OPTIONS.items() if o.kind == "mask" and values[n]]
        files = [*halves, *masks]
        if len(halves) != 2 or not all(files) or not all(Path(f).is_file() for f in files):
            return  # not there yet (an upstream job may make them): checked again when locband runs
        h1 = read_map_header(halves[0], what="half-map 1")
        h2 = read_map_header(halves[1], what="half-map 2")
        mk = read_map_header(masks[0], what="mask") if masks else None
        pixel = values.get("pixel_size")
        check_inputs_agree(h1, h2, mk, pixel_size_angstrom=pixel if pixel and pixel > 0 else None)

    # -- running ---------------------------------------------------------------------------------

    def get_commands(self) -> list[PipelinerCommand]:
        """One command: ``locband <subcommand> ... --out-dir <job folder> --quiet``."""
        args = build_arguments(self.OPTIONS, self._values())
        program = self.jobinfo.programs[0]
        command = [program.exe_path or program.command, self.SUBCOMMAND, *args, "--out-dir", self.output_dir,
                   "--quiet"]
        return [PipelinerCommand(command)]

    def create_output_nodes(self) -> None:
        """Register the job's output files as typed nodes (before the run, as the pipeliner expects)."""
        for out in self.OUTPUTS.values():
            if out.only_if is None or self.joboptions[out.only_if].get_boolean():
                self.add_output_node(out.name, out.node_type, list(out.keywords))

    # -- results ---------------------------------------------------------------------------------

    def _path(self, kind: str) -> str:
        return os.path.join(self.output_dir, self.OUTPUTS[kind].name)

    def gather_metadata(self) -> dict[str, Any]:
        """Resolutions, local-resolution percentiles, bands and settings from ``summary.json``."""
        from locband.io.summary import read_json

        summary = read_json(self._path("summary"))
        keep = ("locband_version", "pixel_size_angstrom", "shape_zyx", "n_bands", "fsc_0143_angstrom",
                "fsc_05_angstrom", "local_resolution_angstrom", "settings")
        return {k: summary.get(k) for k in keep}

    def create_results_display(self) -> Sequence[Any]:
        """What the PNG report shows, as Doppio's own display objects.

        A summary table, the global FSC of the input halves (graph), the local-resolution
        histogram, central slices of the main map and the local-resolution map, the main map in
        the 3D viewer, and the report image itself when it was written.
        """
        from locband.io.summary import read_json

        summary_path = self._path("summary")
        summary = read_json(summary_path)
        main, local_res = self._path(self.MAIN_MAP), self._path("local_resolution")
        objects = [_summary_table(summary, summary_path), _fsc_graph(summary, summary_path),
                   _histogram(summary, local_res),
                   make_mrcs_central_slices_montage(in_files={main: f"{self.OUTPUTS[self.MAIN_MAP].name}",
                                                              local_res: "local resolution (Å)"},
                                                    output_dir=self.output_dir),
                   make_map_model_thumb_and_display(outputdir=self.output_dir, maps=[main],
                                                    title=f"locband {self.OUTPUTS[self.MAIN_MAP].name}")]
        png = os.path.join(self.output_dir, REPORT_NAMES["png"])
        if Path(png).is_file():
            objects.append(create_results_display_object(
                "image", title="locband report", image_path=png, start_collapsed=True,
                image_desc="Global FSC, local-resolution histogram and central slices (report.pdf has the settings)",
                associated_data=[png]))
        return objects


def _summary_table(summary: dict[str, Any], path: str) -> Any:
    from locband.pipeline import fsc_text

    res = summary.get("local_resolution_angstrom") or {}

    def a(value: Any) -> str:
        return "-" if value is None else f"{float(value):.2f} Å"

    masked = (summary.get("fsc") or {}).get("masked") is not None
    rows = [[f"FSC = {t} ({which})", fsc_text(summary, which, key)]  # honest about bounds, as the report
            for t, key in (("0.143", "0143"), ("0.5", "05")) for which in ("unmasked", "masked")
            if which == "unmasked" or masked]
    rows += [[f"local resolution, median ({res.get('within', '')})", a(res.get("p50"))],
            ["local resolution, 5-95 %", f"{a(res.get('p5'))} - {a(res.get('p95'))}"],
            ["bands", str(summary.get("n_bands"))],
            ["voxel size", f"{float(summary['pixel_size_angstrom']):.4f} Å"],
            ["box (x, y, z)", " x ".join(str(n) for n in reversed(summary.get("shape_zyx") or []))],
            ["locband version", str(summary.get("locband_version"))]]
    return create_results_display_object("table", title="locband summary", headers=["", "value"],
                                         table_data=rows, associated_data=[path])


def _fsc_graph(summary: dict[str, Any], path: str) -> Any:
    """The global FSC of the input halves against spatial frequency in 1/Å, with 0.143 and 0.5."""
    from locband.engine.units import cycles_to_angstrom
    from locband.pipeline import fsc_text

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
    for threshold in (0.143, 0.5):
        xs.append([0.0, nyquist])
        ys.append([threshold, threshold])
        labels.append(f"FSC = {threshold:g}")
    return create_results_display_object(
        "graph", title="Global FSC of the input half-maps", xvalues=xs, yvalues=ys, data_series_labels=labels,
        xaxis_label="spatial frequency (1/Å)", yaxis_label="FSC", xrange=[0.0, nyquist], yrange=[-0.1, 1.05],
        associated_data=[path])


def _histogram(summary: dict[str, Any], local_res_path: str) -> Any:
    """The report's local-resolution histogram (voxels with mask > 0.5, else the whole box)."""
    from locband.io.mrc import read_map
    from locband.report import local_resolution_histogram

    local_res = read_map(local_res_path, what="local-resolution map").data
    mask_path = (summary.get("inputs") or {}).get("mask")
    mask = read_map(mask_path, what="mask").data if mask_path and Path(mask_path).is_file() else None
    counts, edges = local_resolution_histogram(local_res, mask)
    within = "mask > 0.5" if mask is not None else "whole box"
    return create_results_display_object(
        "histogram", title=f"Local resolution ({within})", bins=[int(c) for c in counts],
        bin_edges=[float(e) for e in edges], xlabel="local resolution (Å)", ylabel="voxels",
        associated_data=[local_res_path] + ([mask_path] if mask is not None else []))


class LocbandFilterJob(LocbandJob):
    """``locband filter`` as a CCP-EM pipeliner job (``locband.postprocess.local_filter``)."""

    PROCESS_NAME = "locband.postprocess.local_filter"
    SUBCOMMAND = "filter"
    OPTIONS = FILTER_OPTIONS
    OUTPUTS = FILTER_OUTPUTS

    def describe(self) -> None:
        """Texts shown in Doppio's job list and help."""
        self.jobinfo.display_name = "locband local filter"
        self.jobinfo.short_desc = "Local, band-wise Wiener filtering of half-maps, with a local-resolution map"
        self.jobinfo.long_desc = (
            "locband splits both half-maps into smooth frequency bands and, around every voxel, compares "
            "the halves in a window that scales with each band's wavelength: their local cross-power is "
            "the signal, the local power of their difference the noise. Each band is weighted by its local "
            "Wiener weight and the bands are summed. Where the signal-to-noise ratio is the same everywhere "
            "the result equals the global FSC-weighted filter; flexible or noisy regions are suppressed "
            "more, well-ordered regions less. Outputs: the filtered map, two filtered half-maps (still "
            "usable as references), the local-resolution map (Å), summary.json and a PNG/PDF report. "
            "Inputs must be unfiltered, unmasked half-maps of the same box and voxel size."
        )
