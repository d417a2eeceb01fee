"""The ``locband`` command line.

Each subcommand lives in its own module under :mod:`locband.commands` with ``add_args(parser)``,
``request_from_args(args, extra)`` (the parsed options as a frozen request) and
``run(args, extra) -> int``; its module docstring is the help text. A module that sets
``ACCEPTS_UNKNOWN = True`` gets the tokens argparse did not know as ``extra`` (the RELION External
job, which RELION calls with options of its own); every other subcommand refuses them.

Exit codes (:mod:`locband.errors`): 0 success, 1 bad input or a failed run (one-line message on
stderr), 2 usage errors, and 128 + the signal number when SIGINT (130), SIGTERM (143) or SIGHUP
(129) stopped the run (one line saying so; temporary files removed, earlier outputs left as
they were; see :mod:`locband._signals`). No message ever shows a password, token or the
credentials of a URL (:mod:`locband._secrets`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import NoReturn

from locband import __version__
from locband._secrets import is_secret_option, redact, secrets_in
from locband._signals import Interrupted, raise_on_termination
from locband.errors import exit_code, one_line

__all__ = ["main", "entry_point", "build_parser", "run_guarded", "SUBCOMMANDS"]

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

_CREDENTIALS_HINT = ("; locband takes no credentials on the command line (cryoSPARC: set CRYOSPARC_EMAIL and "
                     "CRYOSPARC_PASSWORD, or log in with 'python -m cryosparc.tools login')")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors never echo a secret (subparsers inherit the class)."""

    secrets: frozenset[str] = frozenset()

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {redact(message, self.secrets)}\n")


def command_module(name: str) -> ModuleType:
    """The module of subcommand ``name``."""
    return importlib.import_module(f"locband.commands.{SUBCOMMANDS[name]}")


def build_parser(secrets: frozenset[str] = frozenset()) -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered; ``secrets`` never appear in its errors."""
    parser_class: type[_Parser] = type("_SecretsParser", (_Parser,), {"secrets": secrets})
    parser = parser_class(prog="locband", description="Local, band-wise filtering of cryo-EM half-maps.")
    parser.add_argument("--version", action="version", version=f"locband {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        module = command_module(name)
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(p)
    return parser


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("locband")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


def run_guarded(run: Callable[[], int], *, where: str, secrets: frozenset[str] = frozenset()) -> int:
    """Call a subcommand; errors become one line on stderr (no secret in it) and an exit code.

    The mapping is :func:`locband.errors.one_line` and :func:`locband.errors.exit_code`: 1 for bad
    input, host failures and every error of the operating system (a full disk, a missing
    permission: the message names the file and the reason), 128 + the signal number after
    SIGINT (130), SIGTERM (143) or SIGHUP (129). Anything else is a bug: its traceback is
    printed (with secrets blanked out) and the exit code is 1.
    """

    def say(text: str) -> None:
        print(redact(text, secrets), file=sys.stderr, flush=True)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return run()
    except KeyboardInterrupt as exc:
        say(f"{where}: {exc if str(exc) else 'interrupted by SIGINT'}; stopped")
        return exit_code(exc)
    except Exception as exc:
        message = one_line(exc)
        if message is None:  # a bug: the traceback helps to report it
            say(f"{where}: internal error, please report it with what follows:\n{traceback.format_exc().rstrip()}")
        else:
            say(f"{where}: error: {message}")
        return exit_code(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never calls ``sys.exit``, except argparse's usage exit 2)."""
    tokens = list(sys.argv[1:] if argv is None else argv)
    secrets = frozenset(secrets_in(tokens))
    with raise_on_termination():
        try:
            parser = build_parser(secrets)
            args, extra = parser.parse_known_args(tokens)
            module = command_module(args.command)
            if extra and not getattr(module, "ACCEPTS_UNKNOWN", False):
                secret_flag = any(is_secret_option(tok) for tok in extra if tok.startswith("-"))
                parser.error(f"unrecognised arguments: {' '.join(extra)}{_CREDENTIALS_HINT if secret_flag else ''}")
            _configure_logging()
            return run_guarded(lambda: int(module.run(args, extra)), where=f"locband {args.command}", secrets=secrets)
        except Interrupted as exc:  # before the subcommand started (imports, parsing)
            print(f"locband: {exc}", file=sys.stderr)
            return exc.exit_code


def entry_point() -> None:
    """Console-script entry point: the only place that calls ``sys.exit``."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
