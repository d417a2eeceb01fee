"""The RELION External job: find the files of a request, filter, write what RELION reads back."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from locband.adapters.relion_external.lifecycle import JobControl, relion_job
from locband.errors import EXIT_FAILURE, EXIT_OK, InputFileError, JobAborted, OptionError, exit_code
from locband.interpretation import PROGRESS_SHARE, DenoiseJob, interpretation_part
from locband.io.atomic import ensure_output_dir
from locband.io.paths import is_dir, is_file
from locband.io.relion_control import EXIT_FILES, LOG_NAME, RELION_JOB_ABORT_NOW
from locband.io.relion_metadata import last_optimiser_star, read_optimiser_general, solvent_mask_name
from locband.io.relion_nodes import OutputNode, format_output_nodes, write_node_file
from locband.options import DenoiseSettings, EngineSettings
from locband.output_names import INTERPRETATION_PREFIX, RELION_EXTERNAL
from locband.pipeline import FilterJob, filter_files, plan_outputs
from locband.progress import TerminalProgress, stage
from locband.summary import fsc_text

__all__ = [
    "ExternalRequest",
    "HalfMaps",
    "NODE_TYPES",
    "other_half",
    "resolve_half_maps",
    "build_output_nodes",
    "execute",
    "run_job",
]

#: output kind -> (RELION 3.1 node type, RELION 4.0/5.0 node type label).
#: Only half 1 is a node, as in Refine3D: PostProcess and LocalRes find half 2 by name.
#: The interpretation map is typed as RELION types its own post-processed map: 3.1's "final map"
#: (11, which 3.1 never offers as an input, so never as a reference), a DensityMap in 4.0/5.0
#: (ModelAngelo, MaskCreate, display). Its two halves are no nodes: they are validation maps,
#: and a half-map node would be averaged and FSC'd by PostProcess and LocalRes.
NODE_TYPES: dict[str, tuple[int, str]] = {
    "full": (6, "DensityMap.mrc"),
    "half1": (10, "DensityMap.mrc.halfmap"),
    "local_resolution": (12, "Image3D.mrc.localresmap"),
    "report_pdf": (13, "LogFile.pdf.relion"),
    INTERPRETATION_PREFIX + "full": (11, "DensityMap.mrc.locband.denoised"),
    INTERPRETATION_PREFIX + "report_pdf": (13, "LogFile.pdf.relion"),
}

#: names Refine3D gives its final unfiltered half-maps
_REFINE3D_HALF1 = "run_half1_class001_unfil.mrc"
_HALF_TOKEN = re.compile(r"(?<![0-9A-Za-z])half([12])(?![0-9])")


@dataclass(frozen=True)
class ExternalRequest:
    """Everything one External job run was asked to do (no file has been looked at yet).

    ``interpretation``: also make the interpretation map (``denoised.mrc``) with these settings.
    """

    out_dir: str
    in_3dref: str | None = None
    half1: str | None = None
    half2: str | None = None
    mask: str | None = None
    pixel_size_angstrom: float | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)
    max_threads: int | None = None
    report: bool = True
    pipeline_control: str | None = None
    ignored: tuple[str, ...] = ()
    interpretation: DenoiseSettings | None = None


@dataclass(frozen=True)
class HalfMaps:
    """The files one run will read."""

    half1: Path
    half2: Path
    mask: Path | None


def other_half(path: str) -> str | None:
    """Return the name of the other half-map: ``half1`` <-> ``half2`` in the file name; pure.

    Returns None when the file name holds no ``half1``/``half2`` token, or more than one.
    """
    p = Path(path)
    matches = list(_HALF_TOKEN.finditer(p.name))
    if len(matches) != 1:
        return None
    m = matches[0]
    swapped = "2" if m.group(1) == "1" else "1"
    return str(p.with_name(p.name[: m.start(1)] + swapped + p.name[m.end(1):]))


def _half_from_ref(ref: str) -> tuple[str, str]:
    """(half1, half2) from ``--in_3dref`` when it names a half-map."""
    other = other_half(ref)
    if other is None:
        raise InputFileError(f"--in_3dref {ref!r}: cannot find the other half-map, the file name holds no "
                             "'half1' or 'half2'; name both with the job parameters half1 and half2")
    m = _HALF_TOKEN.search(Path(ref).name)
    return (ref, other) if m is not None and m.group(1) == "1" else (other, ref)


def resolve_half_maps(req: ExternalRequest) -> HalfMaps:
    """Find the half-maps and mask on disk for a request.

    Raises
    ------
    InputFileError
        No half-maps named, the other half not found by name, or a Refine3D folder without
        final half-maps.
    """
    half1, half2 = req.half1, req.half2
    ref = req.in_3dref
    mask = req.mask
    if ref is not None and is_dir(ref):
        candidate = Path(ref) / _REFINE3D_HALF1
        if not is_file(candidate):
            raise InputFileError(f"--in_3dref folder {ref!r} holds no {_REFINE3D_HALF1}: expected a finished "
                                 "Refine3D job folder (or give a half-map)")
        if mask is None:
            mask = _refinement_mask(Path(ref))
        ref = str(candidate)
    if ref is not None and (half1 is None or half2 is None):
        r1, r2 = _half_from_ref(ref)
        half1 = half1 or r1
        half2 = half2 or r2
    if half1 is not None and half2 is None:
        half2 = other_half(half1)
        if half2 is None:
            raise InputFileError(f"job parameter --half1 {half1!r}: cannot find half 2 by name; add the job "
                                 "parameter half2")
    if half1 is None or half2 is None:
        raise OptionError("no half-maps: give --in_3dref (a half-map such as run_half1_class001_unfil.mrc, "
                             "or a Refine3D job folder) or the job parameters half1 and half2")
    for what, p in (("half-map 1", half1), ("half-map 2", half2)):
        if not is_file(p):
            how = f" (found by name from --in_3dref {req.in_3dref!r})" if req.in_3dref else ""
            raise InputFileError(f"{what} {p!r}{how} does not exist")
    return HalfMaps(Path(half1), Path(half2), Path(mask) if mask else None)


def _refinement_mask(refine_dir: Path) -> str | None:
    """Return the solvent mask the Refine3D job used, if its last optimiser file names one that exists."""
    star = last_optimiser_star(refine_dir)
    if star is None:
        return None
    general, _ = read_optimiser_general(star)
    if not general:
        raise InputFileError(f"optimiser STAR file {str(star)!r} has no data_optimiser_general block")
    name = solvent_mask_name(general)
    return name if name is not None and is_file(name) else None


def build_output_nodes(out_dir: str, outputs: dict[str, str]) -> list[OutputNode]:
    """Build the RELION nodes for the files one run wrote; pure.

    Parameters
    ----------
    out_dir : str
        ``--o`` as RELION gave it (``External/job012/``), so that node names are relative to
        the project folder exactly as RELION names its own nodes.
    outputs : dict
        Output kind (``full``, ``half1``, ``local_resolution``, ``report_pdf``, ...) -> file
        name inside ``out_dir``. Kinds without a RELION node type are left out.
    """
    prefix = out_dir if out_dir.endswith("/") else out_dir + "/"
    nodes = []
    for kind, (code, label) in NODE_TYPES.items():
        if kind in outputs:
            nodes.append(OutputNode(prefix + Path(outputs[kind]).name, code, label))
    return nodes


#: files the job writes into --o beside its output set (checked against the inputs, never part of the set)
_BESIDE_THE_SET = (LOG_NAME, *EXIT_FILES, RELION_JOB_ABORT_NOW)


def execute(req: ExternalRequest, job: JobControl, *, stdout: TextIO | None) -> None:
    """Find the files, filter, and write the outputs and the node file as one set (inside :func:`relion_job`)."""
    halves = resolve_half_maps(req)
    threads = req.engine.workers(limit=req.max_threads)  # RELION's --j caps the idle cores (README)
    run = FilterJob(half1=halves.half1, half2=halves.half2, out_dir=Path(req.out_dir), mask=halves.mask,
                    pixel_size_angstrom=req.pixel_size_angstrom, engine=replace(req.engine, threads=threads),
                    report=req.report)
    # before any work and before the first log line: no file of the job may be one of its inputs
    plan_outputs(run.out_dir, inputs=run.inputs, names=RELION_EXTERNAL, also_writes=_BESIDE_THE_SET)
    for item in _group_options(req.ignored):
        job.log(f"ignoring {item!r} (not a locband option)")
    job.log(f"half-maps {halves.half1} and {halves.half2}; mask {halves.mask or 'none'}; {threads} thread(s)")
    nodes = build_output_nodes(req.out_dir, {kind: RELION_EXTERNAL[kind] for kind in _node_kinds(req)})
    node_text = format_output_nodes(nodes)  # a bad node name fails here, before any work
    progress = job.progress(TerminalProgress(stdout, enabled=True) if stdout is not None else None)
    parts = []
    if req.interpretation is not None:  # first: the filter's run reads, filters and writes the whole set
        job.log(f"interpretation map ({RELION_EXTERNAL[INTERPRETATION_PREFIX + 'full']}): for model building and "
                "viewing only, never a refinement reference")
        den = DenoiseJob(half1=run.half1, half2=run.half2, out_dir=run.out_dir, mask=run.mask,
                         pixel_size_angstrom=run.pixel_size_angstrom, denoise=req.interpretation, engine=run.engine,
                         report=run.report)
        parts.append(interpretation_part(den, progress=stage(progress, 0.0, PROGRESS_SHARE, "interpretation map: ")))
    # the node file is part of the output set: RELION never sees nodes of another run's files
    start = PROGRESS_SHARE if parts else 0.0
    nodes_file = {"nodes": lambda p: write_node_file(p, node_text)}
    summary = filter_files(run, progress=stage(progress, start, 1.0 - start), names=RELION_EXTERNAL,
                           also_writes=_BESIDE_THE_SET, extra_outputs=nodes_file, parts=parts)
    job.check_abort("writing the outputs")
    res = summary["local_resolution_angstrom"]
    job.log(f"done: FSC=0.143 {fsc_text(summary)} (unmasked); local resolution "
            f"{res['p5']:.2f}-{res['p95']:.2f} Å (5-95 %); nodes: {', '.join(n.name for n in nodes)}")


def _node_kinds(req: ExternalRequest) -> list[str]:
    """The output kinds this run registers as nodes."""
    kinds = ["full", "half1", "local_resolution", "report_pdf"]
    if req.interpretation is not None:
        kinds += [INTERPRETATION_PREFIX + k for k in kinds]
    return [k for k in kinds if k in NODE_TYPES and (req.report or not k.endswith("report_pdf"))]


def _group_options(tokens: Sequence[str]) -> list[str]:
    """Join ``['--a', '1', '--b']`` into ``['--a 1', '--b']`` (for readable log lines)."""
    groups: list[str] = []
    for tok in tokens:
        if tok.startswith("--") or not groups:
            groups.append(tok)
        else:
            groups[-1] += f" {tok}"
    return groups


def run_job(out_dir: str, request: Callable[[], ExternalRequest], *, stdout: TextIO | None = None,
            stderr: TextIO | None = None) -> int:
    """Run one External job in ``out_dir``: the request, the filter, the outputs, nodes and an exit file.

    ``request()`` builds the request inside the job, so that a bad option too ends with
    ``RELION_JOB_EXIT_FAILURE`` and its reason in ``run.err``.

    Returns 0 on success and 1 on failure or abort; the exit file in ``out_dir`` says which. After
    SIGINT, SIGTERM or SIGHUP (turned into :class:`locband._signals.Interrupted` by the command
    line) it returns 128 + the signal number, with ``RELION_JOB_EXIT_FAILURE`` written.

    Raises
    ------
    InputFileError
        Only when ``out_dir`` cannot be created, so that no exit file can be written.
    """
    err = stderr if stderr is not None else sys.stderr
    ensure_output_dir(out_dir)  # an unusable --o is reported here: no exit file can be written there
    try:
        with relion_job(out_dir, stdout=stdout, stderr=err) as job:
            execute(request(), job, stdout=stdout if stdout is not None else sys.stdout)
    except JobAborted:
        return EXIT_FAILURE
    except Exception:  # reason (and, for unexpected errors, the traceback) already in run.err
        return EXIT_FAILURE
    except KeyboardInterrupt as exc:  # SIGINT/SIGTERM/SIGHUP: failure file and one line already written
        return exit_code(exc)
    return EXIT_OK
