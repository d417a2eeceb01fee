"""The names of the files a run writes: every output set, in one place.

An output set (:class:`locband.io.outputs.OutputSet`) is written all-or-nothing with a manifest;
its *kinds* are the keys of ``summary["outputs"]`` and of the host tables (RELION node types,
CCP-EM nodes, cryoSPARC slots). A new command or host adds its set here, one entry. Files that a
host protocol names (RELION's node file and exit files, the hook's log and meeting folder, the
manifest) are defined where that protocol is read and written, in :mod:`locband.io`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from locband.io.relion_nodes import OUTPUT_NODES_NAME

__all__ = ["OutputNames", "REPORT", "FILTER", "DENOISE", "INTERPRETATION", "INTERPRETATION_PREFIX", "RELION_EXTERNAL",
           "CRYOSPARC_OFFLINE", "MAP_KINDS", "cryosparc_upload_name"]


@dataclass(frozen=True)
class OutputNames(Mapping[str, str]):
    """The files of one kind of output set: output kind -> file name inside the output folder.

    Every name is owned by the set: a run that does not write one of them (an optional output)
    removes an earlier run's file of that name when it commits.
    """

    files: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, kind: str) -> str:
        return self.files[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def with_files(self, **more: str) -> OutputNames:
        """The set with more ``kind=name`` entries."""
        return OutputNames({**self.files, **more})

    def part(self, prefix: str) -> OutputNames:
        """The entries whose kind starts with ``prefix``, under their kinds without it.

        A second result written into the same set (the interpretation map beside the filter's
        maps) names its files by the kinds of a set of its own: ``denoised_full`` -> ``full``.
        """
        return OutputNames({k[len(prefix):]: v for k, v in self.files.items() if k.startswith(prefix)})


#: the report of a run (drawn by :mod:`locband.report`): a page of plots and, in the PDF, the settings
REPORT = OutputNames({"report_png": "report.png", "report_pdf": "report.pdf"})

#: ``locband filter``, ``locband demo``, the CCP-EM job: the maps, the summary and the report
FILTER = OutputNames({
    "full": "filtered.mrc",
    "half1": "filtered_half1.mrc",
    "half2": "filtered_half2.mrc",
    "local_resolution": "local_resolution.mrc",
    "band_snr": "band_snr.mrc",  # only with FilterParams.keep_band_snr
    "summary": "summary.json",
    **REPORT.files,
})

#: ``locband denoise``: the interpretation map, its two halves (cross-validation), local resolution,
#: summary and report
DENOISE = OutputNames({
    "full": "denoised.mrc",
    "half1": "denoised_half1.mrc",
    "half2": "denoised_half2.mrc",
    "local_resolution": "local_resolution.mrc",
    "summary": "summary.json",
    **REPORT.files,
})

#: kinds of the interpretation map written beside a host's filter outputs
INTERPRETATION_PREFIX = "denoised_"
#: the interpretation map beside a host's filter outputs (its ``interpretation`` switch): the files
#: of :data:`DENOISE` by kinds with :data:`INTERPRETATION_PREFIX` (:meth:`OutputNames.part` gives
#: them back), the summary and report under names of their own; the local-resolution map is the
#: filter's (the same map), written once
INTERPRETATION = OutputNames({
    INTERPRETATION_PREFIX + "full": DENOISE["full"],
    INTERPRETATION_PREFIX + "half1": DENOISE["half1"],
    INTERPRETATION_PREFIX + "half2": DENOISE["half2"],
    INTERPRETATION_PREFIX + "summary": "denoised_summary.json",
    INTERPRETATION_PREFIX + "report_png": "denoised_report.png",
    INTERPRETATION_PREFIX + "report_pdf": "denoised_report.pdf",
})

#: the RELION External job: the filter's set, the interpretation map when asked, the node file RELION reads
RELION_EXTERNAL = FILTER.with_files(nodes=OUTPUT_NODES_NAME, **INTERPRETATION.files)

#: ``locband cryosparc offline``: the filter's set plus a volume dataset and its group file; with the
#: interpretation map, its own dataset and group file (a second output, as online)
CRYOSPARC_OFFLINE = FILTER.with_files(volume_cs="locband_volume.cs", group_csg="locband_volume.csg",
                                      **INTERPRETATION.files, volume_cs_denoised="locband_denoised_volume.cs",
                                      group_csg_denoised="locband_denoised_volume.csg")

#: output kind of a map -> attribute of :class:`~locband.engine.params.FilterResult` (and ``DenoiseResult``)
MAP_KINDS = {"full": "full", "half1": "half1", "half2": "half2", "local_resolution": "local_resolution_angstrom"}



def cryosparc_upload_name(job_uid: str, kind: str) -> str:
    """Name of a file uploaded into a cryoSPARC External job's folder (``J43_locband_map.mrc``).

    ``kind`` is an output slot (``map``, ``map_half_A``, ...) or ``summary``, with a prefix for a
    second output (``denoised_map``, ``denoised_summary``).
    """
    suffix = ".json" if kind.endswith("summary") else ".mrc"
    return f"{job_uid}_locband_{kind}{suffix}"
