"""The ``locband`` command line.

Each subcommand lives in its own module under :mod:`locband.commands` with ``add_args(parser)``
and ``run(args) -> int``; its module docstring is the help text. Exit codes: 0 success,
1 bad input or a failed run (one-line message on stderr), 2 usage errors.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from locband import __version__

__all__ = ["main", "SUBCOMMANDS"]

#: subcommand name -> module under locband.commands
SUBCOMMANDS: dict[str, str] = {
    "filter": "filter_cmd",
    "demo": "demo",
    "relion-reconstruct": "relion_reconstruct",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="locband",
        description="Local, band-wise filtering of cryo-EM half-maps.",
    )
    parser.add_argument("--version", action="version", version=f"locband {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f"locband.commands.{module_name}")
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(p)
        p.set_defaults(_run=module.run)
    return parser


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("locband")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never calls ``sys.exit``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "_accepts_unknown", False):
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    args._extra = extra
    _configure_logging(getattr(args, "verbose", False))
    from locband.commands._common import run_guarded

    return run_guarded(args._run, args)


def entry_point() -> None:
    """Console-script entry point: the only place that calls ``sys.exit``."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
