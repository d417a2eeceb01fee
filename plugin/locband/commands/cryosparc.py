"""cryoSPARC: filter a refinement's half-maps in an External job, offline, or in a refinement loop.

Needs the optional extra: pip install 'locband[cryosparc]' (cryosparc-tools; 5.x for the
online commands). Credentials are never given on the command line: set CRYOSPARC_BASE_URL
(or CRYOSPARC_MASTER_HOSTNAME + CRYOSPARC_BASE_PORT) and CRYOSPARC_EMAIL + CRYOSPARC_PASSWORD,
or log in once with 'python -m cryosparc.tools login --url URL'.

  filter    new External job connected to --job's volume output; uploads filtered map,
            halves and local resolution and saves the output 'filtered_volume'; with
            --interpretation also the interpretation map (locband denoise), saved as a second
            output 'denoised_volume': for model building and viewing, never a refinement reference
  offline   same outputs from a job folder or its volume .cs into a new folder, plus
            locband_volume.cs and locband_volume.csg (Import Result Group); with
            --interpretation also denoised*.mrc and locband_denoised_volume.cs / .csg
  loop      refinement -> filter -> local refinement seeded with the filtered volume -> ...;
            resumable (state file), stops when the resolution stops improving or after N rounds;
            always the linear filtered map (no --interpretation)

Examples
--------
  locband cryosparc filter --project P3 --workspace W1 --job J42
  locband cryosparc offline /data/P3/J42 --out-dir /data/P3/locband_J42
  locband cryosparc filter --project P3 --workspace W1 --job J42 --interpretation --molecular-mass-kda 450
  locband cryosparc loop --project P3 --workspace W1 --job J42 --max-rounds 4 --lane default
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from locband.adapters.cryosparc import (
    DENOISED_OUTPUT_NAME,
    FilterRequest,
    LoopRequest,
    OfflineRequest,
    connect,
    disconnect,
    filter_offline,
    run_filter_job,
    run_loop,
)
from locband.commands._common import add_engine_arguments, engine_from_args
from locband.errors import OptionError
from locband.options import (
    DENOISE,
    INTERPRETATION,
    OUT_DIR,
    QUIET,
    DenoiseSettings,
    Option,
    add_arguments,
    values_from_namespace,
)
from locband.progress import TerminalProgress
from locband.summary import fsc_text

__all__ = ["ONLINE", "SHARED", "FILTER", "OFFLINE", "LOOP", "add_args", "request_from_args", "run",
           "parse_refine_params",
           "filter_request", "offline_request", "loop_request"]

#: a connected command's source: which project, workspace, job and output
ONLINE: tuple[Option, ...] = (
    Option("project", "text", "project UID, e.g. P3", metavar="P", required=True),
    Option("workspace", "text", "workspace UID for new jobs, e.g. W1", metavar="W", required=True),
    Option("job", "text", "refinement job UID whose volume output is used", metavar="J", required=True),
    Option("output", "text", "name of the volume output", default="volume", metavar="NAME"),
    Option("url", "text", "cryoSPARC URL (default: $CRYOSPARC_BASE_URL); no credentials here", metavar="URL"),
)
#: every cryoSPARC command
SHARED: tuple[Option, ...] = (
    Option("mask_slot", "text", "mask slot of the volume output: auto (mask_fsc, else mask_refine), none, or a "
           "slot name", default="auto", metavar="SLOT"),
    QUIET,
)
#: ``locband cryosparc filter``
FILTER: tuple[Option, ...] = (
    *ONLINE, Option("title", "text", "title of the External job", default="locband local filter", metavar="TEXT"),
    *SHARED)
#: ``locband cryosparc offline``
OFFLINE: tuple[Option, ...] = (
    Option("source", "path", "a refinement's job folder (<project>/J42) or its volume .cs file", flag="",
           metavar="SOURCE", required=True),
    Option(OUT_DIR.name, "path", "new output folder", metavar="DIR", required=True),
    Option("project_dir", "path", "folder the .cs paths are relative to (default: the job folder's parent)",
           metavar="DIR"),
    *SHARED)
#: ``locband cryosparc loop``
LOOP: tuple[Option, ...] = (
    *ONLINE,
    Option("state", "path", "JSON state file (default ./locband_loop_<P>_<J>.json); re-run to resume", metavar="FILE"),
    Option("refine_type", "text", "job type seeded with the filtered volume (new_local_refine, homo_refine_new, "
           "nonuniform_refine_new)", default="new_local_refine", metavar="TYPE"),
    Option("refine_param", "list", "parameter of the refinement jobs (JSON value or text), repeatable",
           metavar="KEY=VALUE"),
    Option("max_rounds", "count", "at most this many filter + refine rounds", default=3, metavar="N"),
    Option("min_improvement", "number", "stop unless a round improves the resolution by this many Å", default=0.05,
           metavar="A", unit="Å"),
    Option("lane", "text", "scheduler lane for the refinement jobs", metavar="LANE"),
    Option("poll_seconds", "positive", "how often to check a queued job, in seconds", default=5.0, metavar="S"),
    Option("timeout", "positive", "give up waiting for one refinement after S seconds (resume later)", metavar="S",
           unit="seconds"),
    *SHARED)
_SUBCOMMANDS = {"filter": ("filter in a new External job (online)", FILTER),
                "offline": ("filter a job folder or volume .cs into a new folder", OFFLINE),
                "loop": ("alternate filter and refinement (resumable)", LOOP)}
#: the subcommands that can also make the interpretation map (the loop seeds refinements: never)
WITH_INTERPRETATION = ("filter", "offline")


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register ``locband cryosparc {filter,offline,loop}``."""
    sub = parser.add_subparsers(dest="cs_command", metavar="{filter,offline,loop}")
    sub.required = True
    for name, (text, options) in _SUBCOMMANDS.items():
        p = sub.add_parser(name, help=text)
        add_arguments(p, options)
        add_engine_arguments(p)
        if name in WITH_INTERPRETATION:
            g = p.add_argument_group("interpretation map (with --interpretation; as `locband denoise`)")
            add_arguments(g, (INTERPRETATION, *DENOISE))


def _interpretation(args: argparse.Namespace) -> DenoiseSettings | None:
    return DenoiseSettings.when_asked(values_from_namespace(args, (INTERPRETATION, *DENOISE)))


def parse_refine_params(items: list[str]) -> dict[str, Any]:
    """``["refine_res_init=8", "refine_symmetry=C2"]`` -> ``{"refine_res_init": 8, ...}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"--refine-param must be KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def filter_request(args: argparse.Namespace) -> FilterRequest:
    """Argv (parsed) -> :class:`~locband.adapters.cryosparc.FilterRequest` (pure)."""
    v = values_from_namespace(args, FILTER)
    return FilterRequest(project=v["project"], workspace=v["workspace"], job=v["job"], output=v["output"],
                         mask_slot=v["mask_slot"], engine=engine_from_args(args), title=v["title"],
                         interpretation=_interpretation(args))


def offline_request(args: argparse.Namespace) -> OfflineRequest:
    """Argv (parsed) -> :class:`~locband.adapters.cryosparc.OfflineRequest` (pure)."""
    v = values_from_namespace(args, OFFLINE)
    return OfflineRequest(source=Path(v["source"]), out_dir=Path(v["out_dir"]),
                          project_dir=Path(v["project_dir"]) if v["project_dir"] else None, mask_slot=v["mask_slot"],
                          engine=engine_from_args(args), interpretation=_interpretation(args))


def loop_request(args: argparse.Namespace) -> LoopRequest:
    """Argv (parsed) -> :class:`~locband.adapters.cryosparc.LoopRequest` (pure; checks the values)."""
    v = values_from_namespace(args, LOOP)
    if not v["refine_type"].strip():
        raise OptionError("--refine-type must name a cryoSPARC job type, e.g. new_local_refine")
    first = FilterRequest(project=v["project"], workspace=v["workspace"], job=v["job"], output=v["output"],
                          mask_slot=v["mask_slot"], engine=engine_from_args(args))
    return LoopRequest(filter=first, refine_type=v["refine_type"], refine_params=parse_refine_params(v["refine_param"]),
                       max_rounds=v["max_rounds"], min_improvement_angstrom=v["min_improvement"], lane=v["lane"],
                       poll_seconds=v["poll_seconds"], timeout_seconds=v["timeout"])


def _run_filter(args: argparse.Namespace) -> int:
    req = filter_request(args)
    cs = connect(args.url)
    try:
        out = run_filter_job(cs, req, progress=TerminalProgress(enabled=not args.quiet))
    finally:
        disconnect(cs)
    also = f" and '{DENOISED_OUTPUT_NAME}' (interpretation map)" if req.interpretation is not None else ""
    print(f"locband cryosparc filter: {req.project} {out['external_job']} output '{out['output']}'{also} saved | "
          f"FSC=0.143 {fsc_text(out)} (unmasked)")
    return 0


def _run_offline(args: argparse.Namespace) -> int:
    req = offline_request(args)
    summary = filter_offline(req, progress=TerminalProgress(enabled=not args.quiet))
    print(f"locband cryosparc offline: wrote {args.out_dir} (volume dataset {summary['cryosparc']['volume_cs']})")
    return 0


def _run_loop(args: argparse.Namespace) -> int:
    req = loop_request(args)
    f = req.filter
    state_path = Path(args.state) if args.state else Path(f"locband_loop_{f.project}_{f.job}.json")
    cs = connect(args.url)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"locband cryosparc loop: {msg}", file=sys.stderr))
    try:
        state = run_loop(cs, req, state_path, report=say)
    finally:
        disconnect(cs)
    best = min(state["rounds"], key=lambda r: r["resolution_angstrom"])
    print(f"locband cryosparc loop: {len(state['rounds']) - 1} rounds; best {best['refine_job']} at "
          f"{best['resolution_angstrom']:.3f} Å; {state['stop_reason']}")
    return 0


def request_from_args(args: argparse.Namespace,
                      extra: Sequence[str] = ()) -> FilterRequest | OfflineRequest | LoopRequest:
    """The request of the cryoSPARC subcommand given (pure)."""
    if args.cs_command == "offline":
        return offline_request(args)
    return loop_request(args) if args.cs_command == "loop" else filter_request(args)


def run(args: argparse.Namespace, extra: Sequence[str] = ()) -> int:
    """Run ``locband cryosparc <filter|offline|loop>``."""
    runs = {"filter": _run_filter, "offline": _run_offline, "loop": _run_loop}
    return runs[args.cs_command](args)
