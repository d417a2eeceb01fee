"""The CCP-EM pipeliner job class: declares its options, validates them, returns its command line.

After the run it describes the results for Doppio (:mod:`.display`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pipeliner.display_tools import create_results_display_object
from pipeliner.job_options import JobOptionValidationResult
from pipeliner.pipeliner_job import ExternalProgram, PipelinerCommand, PipelinerJob, Ref

from locband import __version__
from locband.adapters.ccpem.display import cross_validation_graph, fsc_graph, histogram, map_slices, summary_table
from locband.adapters.ccpem.fields import (
    DENOISE_OPTIONS,
    DENOISE_OUTPUTS,
    FILTER_OPTIONS,
    FILTER_OUTPUTS,
    JobField,
    Output,
    build_arguments,
    job_option,
    params_from_values,
)
from locband.engine.params import FilterParams
from locband.errors import InputFileError, OptionError
from locband.inputs import check_inputs_agree
from locband.io.mrc import read_map_header
from locband.io.paths import console_script, is_file
from locband.io.summary import read_json
from locband.options import DENOISE, DenoiseSettings
from locband.output_names import FILTER as OUTPUT_NAMES

__all__ = ["LocbandJob", "LocbandFilterJob", "LocbandDenoiseJob", "locband_executable"]

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
    return console_script("locband")


def _program() -> ExternalProgram:
    """The job's program, named ``locband`` (reports, citations) but run by its full path.

    Without an executable the pipeliner marks the job unavailable ("executable 'locband' not found").
    """
    exe = locband_executable()
    program = ExternalProgram(command="locband", name="locband", vers_com=[exe or "locband", "--version"])
    program.exe_path = exe
    return program


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
    OPTIONS: Mapping[str, JobField] = {}
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
                self.joboptions[name] = job_option(name, opt, defaults)
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
        halves = [values[n] for n, o in self.OPTIONS.items() if o.kind == "halfmap"]
        masks = [values[n] for n, o in self.OPTIONS.items() if o.kind == "mask" and values[n]]
        files = [*halves, *masks]
        if len(halves) != 2 or not all(files) or not all(is_file(f) for f in files):
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
        summary_path = self._path("summary")
        summary = read_json(summary_path)
        main, local_res = self._path(self.MAIN_MAP), self._path("local_resolution")
        objects = [summary_table(summary, summary_path), fsc_graph(summary, summary_path),
                   histogram(summary, local_res),
                   *map_slices(self.output_dir, main, self.OUTPUTS[self.MAIN_MAP].name, local_res)]
        png = os.path.join(self.output_dir, OUTPUT_NAMES["report_png"])
        if is_file(png):
            objects.append(create_results_display_object(
                "image", title="locband report", image_path=png, start_collapsed=True,
                image_desc="Global FSC, local-resolution histogram and central slices (report.pdf has the settings)",
                associated_data=[png]))
        return objects


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


class LocbandDenoiseJob(LocbandJob):
    """``locband denoise`` as a CCP-EM pipeliner job (``locband.postprocess.local_denoising``).

    The interpretation map: for model building and viewing only, never averaged again or used as
    a refinement reference. Results as the filter job's (the summaries share their keys), plus
    the cross-validation curves.
    """

    PROCESS_NAME = "locband.postprocess.local_denoising"
    SUBCOMMAND = "denoise"
    OPTIONS = DENOISE_OPTIONS
    OUTPUTS = DENOISE_OUTPUTS

    def describe(self) -> None:
        """Texts shown in Doppio's job list and help."""
        self.jobinfo.display_name = "locband interpretation map"
        self.jobinfo.short_desc = ("Model-free density modification of half-maps: a map for model building, "
                                   "never for refinement")
        self.jobinfo.long_desc = (
            "locband denoise makes an interpretation map from two half-maps: on the bands and local statistics "
            "of the locband local filter, every voxel of every band is weighted by how certain it is to be signal "
            "(the real-space priors, positive density, flat solvent, expected volume from the molecular mass, "
            "connectivity, deciding where the data say little), and the local fall-off of the amplitudes is "
            "restored where the bands are significant (local sharpening; or one global B-factor, or none). No "
            "atomic model, no network. The map is non-linear: build into it and look at it, but never average "
            "it again or use it as a refinement reference (use locband.postprocess.local_filter for that). Each "
            "half is also processed on its own, using the other half's statistics but never its voxels; its "
            "agreement with the raw other half (the cross-validation curves) shows what the processing added. "
            "Outputs: denoised.mrc, denoised_half1.mrc and denoised_half2.mrc (cross-validation), the "
            "local-resolution map (Å), summary.json and a PNG/PDF report. Inputs must be unfiltered, unmasked "
            "half-maps of the same box and voxel size."
        )

    def additional_joboption_validation(self) -> list[JobOptionValidationResult]:
        """As the filter job's, and the interpretation map's settings as ``locband denoise`` checks them."""
        errors = super().additional_joboption_validation()
        values = self._values()
        names = [o.name for o in DENOISE if o.name in self.joboptions]
        try:
            DenoiseSettings.from_values({n: values[n] for n in names}, called={n: f"job option {n}" for n in names})
        except OptionError as exc:
            errors.append(JobOptionValidationResult("error", [self.joboptions[n] for n in names], str(exc)))
        return errors

    def gather_metadata(self) -> dict[str, Any]:
        """The filter job's metadata, what the map is for, and the envelope volume."""
        summary = read_json(self._path("summary"))
        return {**super().gather_metadata(), "use": summary.get("use"),
                "envelope_volume_angstrom3": summary.get("envelope_volume_angstrom3")}

    def create_results_display(self) -> Sequence[Any]:
        """The filter job's display, with the cross-validation curves after the global FSC."""
        objects = list(super().create_results_display())
        summary_path = self._path("summary")
        objects.insert(2, cross_validation_graph(read_json(summary_path), summary_path))
        return objects
