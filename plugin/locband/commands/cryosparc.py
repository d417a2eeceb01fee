"""cryoSPARC: filter a refinement's half-maps in an External job, offline, or in a refinement loop.

Needs the optional extra: pip install 'locband[cryosparc]' (cryosparc-tools; 5.x for the
online commands). Credentials are never given on the command line: set CRYOSPARC_BASE_URL
(or CRYOSPARC_MASTER_HOSTNAME + CRYOSPARC_BASE_PORT) and CRYOSPARC_EMAIL + CRYOSPARC_PASSWORD,
or log in once with 'python -m cryosparc.tools login --url URL'.

  filter    new External job connected to --job's volume output; uploads filtered map,
            halves and local resolution and saves the output 'filtered_volume'
  offline   same outputs from a job folder or its volume .cs into a new folder, plus
            locband_volume.cs and locband_volume.csg (Import Result Group)
  loop      refinement -> filter -> local refinement seeded with the filtered volume -> ...;
            resumable (state file), stops when the resolution stops improving or after N rounds

Examples:
  locband cryosparc filter --project P3 --workspace W1 --job J42
  locband cryosparc offline /data/P3/J42 --out-dir /data/P3/locband_J42
  locband cryosparc loop --project P3 --workspace W1 --job J42 --max-rounds 4 --lane default
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from locband.commands._common import TerminalProgress, add_common_filter_args, params_from_args, threads_from_args
from locband.io.errors import InputFileError

__all__ = ["add_args", "run", "parse_refine_params", "filter_request", "loop_request"]


def _add_online(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", required=True, metavar="P", help="project UID, e.g. P3")
    p.add_argument("--workspace", required=True, metavar="W", help="workspace UID for new jobs, e.g. W1")
    p.add_argument("--job", required=True, metavar="J", help="refinement job UID whose volume output is used")
    p.add_argument("--output", default="volume", help="name of the volume output (default 'volume')")
    p.add_argument("--url", default=None, help="cryoSPARC URL (default: $CRYOSPARC_BASE_URL); no credentials here")


def _add_shared(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mask-slot", default="auto",
                   help="mask slot of the volume output: auto (mask_fsc, else mask_refine), none, or a slot name")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_common_filter_args(p)


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register ``locband cryosparc {filter,offline,loop}``."""
    sub = parser.add_subparsers(dest="cs_command", metavar="{filter,offline,loop}")
    sub.required = True
    pf = sub.add_parser("filter", help="filter in a new External job (online)")
    _add_online(pf)
    pf.add_argument("--title", default="locband local filter", help="title of the External job")
    _add_shared(pf)
    pf.set_defaults(_cs_run=_run_filter)

    po = sub.add_parser("offline", help="filter a job folder or volume .cs into a new folder")
    po.add_argument("source", help="a refinement's job folder (<project>/J42) or its volume .cs file")
    po.add_argument("--out-dir", required=True, help="new output folder")
    po.add_argument("--project-dir", default=None,
                    help="folder the .cs paths are relative to (default: the job folder's parent)")
    _add_shared(po)
    po.set_defaults(_cs_run=_run_offline)

    pl = sub.add_parser("loop", help="alternate filter and refinement (resumable)")
    _add_online(pl)
    pl.add_argument("--state", default=None,
                    help="JSON state file (default ./locband_loop_<P>_<J>.json); re-run to resume")
    pl.add_argument("--refine-type", default="new_local_refine",
                    help="job type seeded with the filtered volume (new_local_refine, homo_refine_new, "
                         "nonuniform_refine_new)")
    pl.add_argument("--refine-param", action="append", default=[], metavar="KEY=VALUE",
                    help="parameter of the refinement jobs (JSON value or text), repeatable")
    pl.add_argument("--max-rounds", type=int, default=3, help="at most this many filter + refine rounds (default 3)")
    pl.add_argument("--min-improvement", type=float, default=0.05, metavar="A",
                    help="stop unless a round improves the resolution by this many Å (default 0.05)")
    pl.add_argument("--lane", default=None, help="scheduler lane for the refinement jobs")
    pl.add_argument("--poll-seconds", type=float, default=5.0, help="how often to check a queued job (default 5)")
    pl.add_argument("--timeout", type=float, default=None, metavar="S",
                    help="give up waiting for one refinement after S seconds (resume later)")
    _add_shared(pl)
    pl.set_defaults(_cs_run=_run_loop)


def parse_refine_params(items: list[str]) -> dict[str, Any]:
    """``["refine_res_init=8", "refine_symmetry=C2"]`` -> ``{"refine_res_init": 8, ...}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputFileError(f"--refine-param must be KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def filter_request(args: argparse.Namespace) -> Any:
    """argv (parsed) -> :class:`~locband.adapters.cryosparc_job.FilterRequest` (pure)."""
    from locband.adapters.cryosparc_job import FilterRequest

    return FilterRequest(project=args.project, workspace=args.workspace, job=args.job, output=args.output,
                         mask_slot=args.mask_slot, params=params_from_args(args), workers=threads_from_args(args),
                         backend=args.fft_backend, device=args.device,
                         title=getattr(args, "title", "locband local filter"))


def loop_request(args: argparse.Namespace) -> Any:
    """argv (parsed) -> :class:`~locband.adapters.cryosparc_job.LoopRequest` (pure; checks the values)."""
    from locband.adapters.cryosparc_job import LoopRequest

    if args.max_rounds < 1:
        raise InputFileError(f"--max-rounds must be >= 1, got {args.max_rounds}")
    if not args.poll_seconds > 0:
        raise InputFileError(f"--poll-seconds must be > 0, got {args.poll_seconds}")
    if args.timeout is not None and not args.timeout > 0:
        raise InputFileError(f"--timeout must be > 0 seconds, got {args.timeout}")
    if not args.refine_type.strip():
        raise InputFileError("--refine-type must name a cryoSPARC job type, e.g. new_local_refine")
    return LoopRequest(filter=filter_request(args), refine_type=args.refine_type,
                       refine_params=parse_refine_params(args.refine_param), max_rounds=args.max_rounds,
                       min_improvement_angstrom=args.min_improvement, lane=args.lane, poll_seconds=args.poll_seconds,
                       timeout_seconds=args.timeout)


def _run_filter(args: argparse.Namespace) -> int:
    from locband.adapters.cryosparc_job import connect, disconnect, run_filter_job
    from locband.pipeline import fsc_text

    req = filter_request(args)
    cs = connect(args.url)
    try:
        out = run_filter_job(cs, req, progress=TerminalProgress(enabled=not args.quiet))
    finally:
        disconnect(cs)
    print(f"locband cryosparc filter: {args.project} {out['external_job']} output '{out['output']}' saved | "
          f"FSC=0.143 {fsc_text(out)} (unmasked)")
    return 0


def _run_offline(args: argparse.Namespace) -> int:
    from locband.adapters.cryosparc_job import filter_offline

    params = params_from_args(args)
    summary = filter_offline(Path(args.source), Path(args.out_dir),
                             project_dir=Path(args.project_dir) if args.project_dir else None,
                             mask_slot=args.mask_slot, params=params, workers=threads_from_args(args),
                             backend=args.fft_backend, device=args.device,
                             progress=TerminalProgress(enabled=not args.quiet))
    print(f"locband cryosparc offline: wrote {args.out_dir} (volume dataset {summary['cryosparc']['volume_cs']})")
    return 0


def _run_loop(args: argparse.Namespace) -> int:
    from locband.adapters.cryosparc_job import connect, disconnect, run_loop

    req = loop_request(args)
    state_path = Path(args.state) if args.state else Path(f"locband_loop_{args.project}_{args.job}.json")
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


def run(args: argparse.Namespace) -> int:
    """Run ``locband cryosparc <filter|offline|loop>``."""
    return int(args._cs_run(args))
