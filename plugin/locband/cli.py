"""The ``locband`` command line.

Each subcommand lives in its own module under :mod:`locband.commands` with ``add_args(parser)``
and ``run(args) -> int``; its module docstring is the help text. Exit codes: 0 success,
1 bad input or a failed run (one-line message on stderr), 2 usage errors, and 128 + the signal
number when SIGINT (130), SIGTERM (143) or SIGHUP (129) stopped the run (one line saying so;
temporary files removed, earlier outputs left as they were; see :mod:`locband._signals`).
No message ever shows a password, token or the credentials of a URL (:mod:`locband._secrets`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from locband import __version__
from locband._secrets import is_secret_option, redact, secrets_in
from locband._signals import Interrupted, raise_on_termination

__all__ = ["main", "SUBCOMMANDS"]

#: subcommand name -> module under locband.commands
SUBCOMMANDS: dict[str, str] = {
    "filter": "filter_cmd",
    "denoise": "denoise_cmd",
    "demo": "demo",
    "report": "report",
    "relion-reconstruct": "relion_reconstruct",
    "relion-external": "relion_external",
    "cryosparc": "cryosparc",
}


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors never echo a secret (subparsers inherit the class)."""

    secrets: frozenset[str] = frozenset()

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {redact(message, self.secrets)}\n")


def build_parser(secrets: frozenset[str] = frozenset()) -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered; ``secrets`` never appear in its errors."""
    parser_class: type[_Parser] = type("_SecretsParser", (_Parser,), {"secrets": secrets})
    parser = parser_class(
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
    """Run the command line; returns the exit code (never calls ``sys.exit``, except argparse's usage exit 2)."""
    tokens = list(sys.argv[1:] if argv is None else argv)
    secrets = frozenset(secrets_in(tokens))
    with raise_on_termination():
        try:
            parser = build_parser(secrets)
            args, extra = parser.parse_known_args(tokens)
            if extra and not getattr(args, "_accepts_unknown", False):
                hint = ""
                if any(is_secret_option(tok) for tok in extra if tok.startswith("-")):
                    hint = ("; locband takes no credentials on the command line (cryoSPARC: set CRYOSPARC_EMAIL and "
                            "CRYOSPARC_PASSWORD, or log in with 'python -m cryosparc.tools login')")
                parser.error(f"unrecognised arguments: {' '.join(extra)}{hint}")
            args._extra = extra
            args._secrets = secrets
            _configure_logging(getattr(args, "verbose", False))
            from locband.commands._common import run_guarded

            return run_guarded(args._run, args)
        except Interrupted as exc:  # before the subcommand started (imports, parsing)
            print(f"locband: {exc}", file=sys.stderr)
            return exc.exit_code


def entry_point() -> None:
    """Console-script entry point: the only place that calls ``sys.exit``."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
