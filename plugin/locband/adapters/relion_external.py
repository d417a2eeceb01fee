"""RELION External job: what RELION passes in, what RELION reads back.

RELION (3.1, 4.0, 5.0) starts an External job as (``RelionJob::getCommandsExternalJob``)::

    <fn_exe> --o External/jobNNN/ [--in_3dref MAP] [--in_mask MASK] [--<label> <value> ...]
             --j <threads> [additional arguments] [--pipeline_control External/jobNNN/]

``--pipeline_control`` is appended only when the command line contains ``relion_``. A job
parameter whose value is left empty arrives as a bare ``--<label>``.

Translation table (each row is tested on its own in ``tests/adapters/test_relion_external.py``):

================================  ==========================================================
RELION argument                   locband
================================  ==========================================================
``--o DIR``                       output folder (created); exit files and node file go there
``--in_3dref MAP|DIR``            a half-map (the other half is found by name: ``half1`` <->
                                  ``half2``) or a Refine3D job folder
                                  (``run_half1_class001_unfil.mrc`` there)
``--in_mask MASK``                soft mask: masked FSC, report histogram, ``apply_mask``
                                  (default with a Refine3D folder: ``rlnSolventMaskName`` of
                                  its last ``run_it*_optimiser.star``, if that file exists)
``--j N``                         the most threads to use (fewer when cores are busy)
``--half1 F`` / ``--half2 F``     name the half-maps explicitly (override ``--in_3dref``)
``--angpix A``                    voxel size in Å (default: MRC header); alias ``pixel_size``
``--band_ratio R``                :attr:`FilterParams.band_ratio`
``--window_wavelengths K``        :attr:`FilterParams.window_wavelengths`
``--noise_threshold Z``           :attr:`FilterParams.noise_threshold`
``--criterion C``                 :attr:`FilterParams.criterion`
``--apply_mask [yes|no]``         :attr:`FilterParams.apply_mask`
``--band_snr [yes|no]``           :attr:`FilterParams.keep_band_snr` (writes band_snr.mrc)
``--fft_backend pyfftw|scipy``    FFT implementation
``--device cpu|cuda``             where the filter runs (``cuda``: a GPU, through CuPy)
``--report [yes|no]``             write report.png / report.pdf (default yes)
``--pipeline_control DIR``        accepted and ignored (the exit files go to ``--o``)
``--in_movies`` ... ``--in_coords`` accepted and ignored, with a note in run.out
anything else                     ignored, with a note in run.out
================================  ==========================================================

Labels may also be written with dashes (``--band-ratio``), as on the ``locband filter`` command line.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

from locband.adapters._relion_control import (
    EXIT_FILES,
    LOG_NAME,
    RELION_JOB_ABORT_NOW,
    JobAborted,
    JobControl,
    relion_job,
)
from locband.engine.params import FilterParams
from locband.io.atomic import ensure_output_dir
from locband.io.errors import InputFileError
from locband.io.relion_nodes import OUTPUT_NODES_NAME, OutputNode, format_output_nodes

__all__ = [
    "Request",
    "HalfMaps",
    "OPTION_TABLE",
    "NODE_TYPES",
    "add_relion_external_options",
    "parse_relion_external_args",
    "request_from_namespace",
    "other_half",
    "resolve_half_maps",
    "build_output_nodes",
    "run",
]

#: user parameter label -> (aliases, kind, FilterParams field or Request field, help)
OPTION_TABLE: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "half1": ((), "path", "half1", "half-map 1 (overrides --in_3dref)"),
    "half2": ((), "path", "half2", "half-map 2 (default: found by name from half 1)"),
    "angpix": (("pixel_size",), "positive", "pixel_size_angstrom", "voxel size in Å (default: MRC header)"),
    "band_ratio": ((), "float", "band_ratio", "ratio between band centres"),
    "window_wavelengths": ((), "float", "window_wavelengths", "local window sigma in wavelengths of each band"),
    "noise_threshold": ((), "float", "noise_threshold",
                        "suppress local signal below this many noise standard deviations"),
    "criterion": ((), "float", "criterion", "local FSC threshold for local resolution"),
    "apply_mask": ((), "bool", "apply_mask", "multiply the filtered maps by the mask"),
    "band_snr": ((), "bool", "keep_band_snr", "also write band_snr.mrc"),
    "fft_backend": ((), "choice:pyfftw,scipy", "fft_backend", "FFT implementation"),
    "device": ((), "choice:cpu,cuda", "device", "cpu, or cuda: run on a GPU (needs pip install 'locband[gpu]')"),
    "report": ((), "bool", "report", "write report.png and report.pdf (default yes)"),
}

#: RELION inputs an External job may pass that locband does not use
_IGNORED_INPUTS = ("in_movies", "in_mics", "in_parts", "in_coords")

#: output kind -> (RELION 3.1 node type, RELION 4.0/5.0 node type label).
#: Only half 1 is a node, as in Refine3D: PostProcess and LocalRes find half 2 by name.
NODE_TYPES: dict[str, tuple[int, str]] = {
    "full": (6, "DensityMap.mrc"),
    "half1": (10, "DensityMap.mrc.halfmap"),
    "local_resolution": (12, "Image3D.mrc.localresmap"),
    "report_pdf": (13, "LogFile.pdf.relion"),
}

_TRUE = {"", "yes", "y", "true", "t", "1", "on"}
_FALSE = {"no", "n", "false", "f", "0", "off"}

#: names Refine3D gives its final unfiltered half-maps
_REFINE3D_HALF1 = "run_half1_class001_unfil.mrc"
_HALF_TOKEN = re.compile(r"(?<![0-9A-Za-z])half([12])(?![0-9])")


@dataclass(frozen=True)
class Request:
    """Everything one External job run was asked to do (no file has been looked at yet)."""

    out_dir: str
    in_3dref: str | None = None
    half1: str | None = None
    half2: str | None = None
    mask: str | None = None
    threads: int | None = None
    pixel_size_angstrom: float | None = None
    params: FilterParams = field(default_factory=FilterParams)
    fft_backend: str | None = None
    device: str = "cpu"
    report: bool = True
    pipeline_control: str | None = None
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class HalfMaps:
    """The files one run will read."""

    half1: Path
    half2: Path
    mask: Path | None


class _RaisingParser(argparse.ArgumentParser):
    """argparse that raises :class:`InputFileError` instead of exiting (RELION needs an exit file)."""

    def error(self, message: str) -> NoReturn:
        raise InputFileError(f"RELION External job arguments: {message}")


def _flags(label: str, aliases: tuple[str, ...] = ()) -> list[str]:
    names = (label, *aliases)
    out = [f"--{n}" for n in names]
    out += [f"--{n.replace('_', '-')}" for n in names if "_" in n]
    return out


def add_relion_external_options(parser: argparse.ArgumentParser) -> None:
    """Register every option the External job understands.

    All values are taken as text and converted by :func:`request_from_namespace`, so that
    parsing itself cannot fail before the exit files can be written.
    """
    parser.allow_abbrev = False  # a user label must never be taken for the prefix of another
    g = parser.add_argument_group("passed by RELION")
    g.add_argument("--o", dest="o", nargs="?", const="", default=None, metavar="DIR",
                   help="output folder (External/jobNNN/)")
    g.add_argument("--in_3dref", dest="in_3dref", nargs="?", const="", default=None, metavar="MAP",
                   help="a half-map (run_half1_class001_unfil.mrc) or a Refine3D job folder")
    g.add_argument("--in_mask", dest="in_mask", nargs="?", const="", default=None, metavar="MASK",
                   help="soft mask (MRC)")
    g.add_argument("--j", dest="j", nargs="?", const="", default=None, metavar="N", help="threads")
    g.add_argument("--pipeline_control", "--pipeline-control", dest="pipeline_control", nargs="?", const="",
                   default=None, metavar="DIR", help="accepted and ignored")
    for name in _IGNORED_INPUTS:
        g.add_argument(f"--{name}", dest=name, nargs="?", const="", default=None, help=argparse.SUPPRESS)
    p = parser.add_argument_group("job parameters (paramN_label / paramN_value in the GUI)")
    for label, (aliases, kind, _, text) in OPTION_TABLE.items():
        metavar = {"bool": "yes|no", "path": "MRC", "positive": "A", "float": "X"}.get(kind) or kind.split(":")[1]
        p.add_argument(*_flags(label, aliases), dest=f"param_{label}", nargs="?", const="", default=None,
                       metavar=metavar.replace(",", "|"), help=text)


def _parser() -> argparse.ArgumentParser:
    parser = _RaisingParser(prog="locband relion-external", add_help=False, allow_abbrev=False)
    add_relion_external_options(parser)
    return parser


def _convert(label: str, kind: str, raw: str) -> Any:
    flag = f"--{label}"
    if kind == "bool":
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise InputFileError(f"job parameter {flag} must be yes or no, got {raw!r}")
    if raw.strip() == "":
        raise InputFileError(f"job parameter {flag} needs a value (set paramN_value), got nothing")
    if kind == "path":
        return raw
    if kind.startswith("choice:"):
        choices = kind.split(":", 1)[1].split(",")
        if raw not in choices:
            raise InputFileError(f"job parameter {flag} must be one of {', '.join(choices)}, got {raw!r}")
        return raw
    try:
        value = float(raw)
    except ValueError:
        raise InputFileError(f"job parameter {flag} must be a number, got {raw!r}") from None
    if kind == "positive" and not value > 0:
        raise InputFileError(f"job parameter {flag} must be > 0, got {raw!r}")
    return value


def _threads(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        n = int(raw)
    except ValueError:
        raise InputFileError(f"--j (number of threads) must be an integer >= 1, got {raw!r}") from None
    if n < 1:
        raise InputFileError(f"--j (number of threads) must be an integer >= 1, got {raw!r}")
    return n


def request_from_namespace(ns: argparse.Namespace, extra: Sequence[str] = ()) -> Request:
    """Convert parsed (text) options into a :class:`Request`; pure.

    Raises
    ------
    InputFileError
        A missing ``--o``, or a value that is not of the expected kind or range.
    """
    if not getattr(ns, "o", None):
        raise InputFileError("--o OUTPUT_FOLDER is required (RELION passes --o External/jobNNN/)")
    values: dict[str, Any] = {}
    for label, (_, kind, target, _) in OPTION_TABLE.items():
        raw = getattr(ns, f"param_{label}", None)
        if raw is not None:
            values[target] = _convert(label, kind, raw)
    param_fields = {"band_ratio", "window_wavelengths", "noise_threshold", "criterion", "apply_mask",
                    "keep_band_snr"}
    try:
        params = FilterParams(**{k: v for k, v in values.items() if k in param_fields})
    except ValueError as exc:
        raise InputFileError(f"job parameter out of range: {exc}") from None
    ignored = [f"--{n} {getattr(ns, n)}" for n in _IGNORED_INPUTS if getattr(ns, n, None) is not None]
    return Request(
        out_dir=str(ns.o),
        in_3dref=ns.in_3dref or None,
        half1=values.get("half1"),
        half2=values.get("half2"),
        mask=ns.in_mask or None,
        threads=_threads(ns.j),
        pixel_size_angstrom=values.get("pixel_size_angstrom"),
        params=params,
        fft_backend=values.get("fft_backend"),
        device=values.get("device", "cpu"),
        report=values.get("report", True),
        pipeline_control=ns.pipeline_control,
        ignored=tuple(ignored) + tuple(extra),
    )


def parse_relion_external_args(argv: Sequence[str]) -> Request:
    """Translate an External job command line into a :class:`Request`; pure (no file is touched).

    Unknown options are kept in :attr:`Request.ignored`, never fatal.

    Raises
    ------
    InputFileError
        Missing ``--o`` or a bad value; the message names the option.
    """
    ns, extra = _parser().parse_known_args(list(argv))
    return request_from_namespace(ns, extra)


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


def resolve_half_maps(req: Request) -> HalfMaps:
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
    if ref is not None and Path(ref).is_dir():
        candidate = Path(ref) / _REFINE3D_HALF1
        if not candidate.is_file():
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
        raise InputFileError("no half-maps: give --in_3dref (a half-map such as run_half1_class001_unfil.mrc, "
                             "or a Refine3D job folder) or the job parameters half1 and half2")
    for what, p in (("half-map 1", half1), ("half-map 2", half2)):
        if not Path(p).is_file():
            how = f" (found by name from --in_3dref {req.in_3dref!r})" if req.in_3dref else ""
            raise InputFileError(f"{what} {p!r}{how} does not exist")
    return HalfMaps(Path(half1), Path(half2), Path(mask) if mask else None)


def _refinement_mask(refine_dir: Path) -> str | None:
    """Return the solvent mask the Refine3D job used, if its last optimiser file names one that exists."""
    from locband.io.relion_star import last_optimiser_star, read_optimiser_general, solvent_mask_name

    star = last_optimiser_star(refine_dir)
    if star is None:
        return None
    general, _ = read_optimiser_general(star)
    if not general:
        raise InputFileError(f"optimiser STAR file {str(star)!r} has no data_optimiser_general block")
    name = solvent_mask_name(general)
    return name if name is not None and Path(name).is_file() else None


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


def _execute(req: Request, job: JobControl, *, stdout: TextIO | None) -> None:
    from locband._threads import default_threads
    from locband.commands._common import TerminalProgress
    from locband.pipeline import OUTPUT_NAMES, filter_files, fsc_text, plan_outputs
    from locband.report import REPORT_NAMES

    halves = resolve_half_maps(req)
    # before any work and before the first log line: no file of the job may be one of its inputs
    plan_outputs(Path(req.out_dir), half1=halves.half1, half2=halves.half2, mask=halves.mask,
                 extra_names=[OUTPUT_NODES_NAME], also_writes=_BESIDE_THE_SET)
    for item in _group_options(req.ignored):
        job.log(f"ignoring {item!r} (not a locband option)")
    threads = default_threads(limit=req.threads)  # RELION's --j caps the idle cores (README)
    job.log(f"half-maps {halves.half1} and {halves.half2}; mask {halves.mask or 'none'}; {threads} thread(s)")
    written = {kind: OUTPUT_NAMES[kind] for kind in ("full", "half1", "local_resolution")}
    if req.report:
        written["report_pdf"] = REPORT_NAMES["pdf"]
    nodes = build_output_nodes(req.out_dir, written)
    node_text = format_output_nodes(nodes)  # a bad node name fails here, before any work
    progress = job.progress(TerminalProgress(stdout, enabled=True) if stdout is not None else None)
    # the node file is part of the output set: RELION never sees nodes of another run's files
    summary = filter_files(halves.half1, halves.half2, mask_path=halves.mask, out_dir=Path(req.out_dir),
                           pixel_size_angstrom=req.pixel_size_angstrom, params=req.params, workers=threads,
                           backend=req.fft_backend, device=req.device, report=req.report, progress=progress,
                           extra_outputs={OUTPUT_NODES_NAME: lambda p: p.write_text(node_text, encoding="utf-8")},
                           also_writes=_BESIDE_THE_SET)
    job.check_abort("writing the outputs")
    res = summary["local_resolution_angstrom"]
    job.log(f"done: FSC=0.143 {fsc_text(summary)} (unmasked); local resolution "
            f"{res['p5']:.2f}-{res['p95']:.2f} Å (5-95 %); nodes: {', '.join(n.name for n in nodes)}")


def _group_options(tokens: Sequence[str]) -> list[str]:
    """Join ``['--a', '1', '--b']`` into ``['--a 1', '--b']`` (for readable log lines)."""
    groups: list[str] = []
    for tok in tokens:
        if tok.startswith("--") or not groups:
            groups.append(tok)
        else:
            groups[-1] += f" {tok}"
    return groups


def _output_folder(argv: Sequence[str]) -> str | None:
    """``--o``'s value, found before anything else can fail (the exit files go there)."""
    args = list(argv)
    for i, tok in enumerate(args):
        if tok == "--o" and i + 1 < len(args) and not args[i + 1].startswith("--"):
            return args[i + 1]
        if tok.startswith("--o="):
            return tok[4:]
    return None


def run(argv: Sequence[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run one External job: parse, filter, write outputs, nodes and the exit file.

    Returns 0 on success and 1 on failure or abort; the exit file in ``--o`` says which. After
    SIGINT, SIGTERM or SIGHUP (turned into :class:`locband._signals.Interrupted` by the command
    line) it returns 128 + the signal number, with ``RELION_JOB_EXIT_FAILURE`` written.

    Raises
    ------
    InputFileError
        Only when ``--o`` is missing or cannot be created, so that no exit file can be written.
    """
    import sys

    out = _output_folder(argv)
    if not out:
        raise InputFileError("--o OUTPUT_FOLDER is required (RELION passes --o External/jobNNN/)")
    err = stderr if stderr is not None else sys.stderr
    ensure_output_dir(out)  # an unusable --o is reported here: no exit file can be written there
    try:
        with relion_job(out, stdout=stdout, stderr=err) as job:
            _execute(parse_relion_external_args(argv), job, stdout=stdout if stdout is not None else sys.stdout)
    except JobAborted:
        return 1
    except Exception:  # reason (and, for unexpected errors, the traceback) already in run.err
        return 1
    except KeyboardInterrupt as exc:  # SIGINT/SIGTERM/SIGHUP: failure file and one line already written
        return int(getattr(exc, "exit_code", 130))
    return 0
