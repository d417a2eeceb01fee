"""What can go wrong, and what the user is told: one small hierarchy, one mapping to exit codes.

Every error locband raises on purpose is a :class:`LocbandError`; its message is one line that
names the file, option or host object, what was expected and what was found::

    LocbandError
    ├── InputError (also a ValueError)      bad user input
    │   ├── InputFileError                  an input file is missing, unreadable or inconsistent
    │   ├── OptionError                     an option or job parameter has a bad value
    │   └── OutputFileError                 an output cannot be written (would replace an input,
    │                                       name taken, folder not writable, disk full)
    ├── HostError                           a host program or protocol failed: the other half of
    │   ├── RendezvousError                 a RELION hook call, a cryoSPARC server or job, a timeout
    │   └── CryosparcJobError
    └── JobAborted                          the user pressed Abort in RELION

Termination signals are not errors: :class:`locband._signals.Interrupted` (a
``KeyboardInterrupt``) ends a command with 128 + the signal number.

:func:`exit_code` and :func:`one_line` are the only place where an exception becomes an exit
code and a message; the command line (:mod:`locband.cli`) and the RELION job lifecycle
(:mod:`locband.adapters.relion_external`) both use them.
"""

from __future__ import annotations

__all__ = ["LocbandError", "InputError", "InputFileError", "OptionError", "OutputFileError", "HostError",
           "RendezvousError", "CryosparcJobError", "JobAborted", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE",
           "exit_code", "one_line"]

#: a command that did what it was asked
EXIT_OK = 0
#: bad input, a failed host, a write error, an abort, or a bug (the message says which)
EXIT_FAILURE = 1
#: a usage error found by argparse (it exits by itself, with this code)
EXIT_USAGE = 2
#: 128 + the signal number after SIGINT, SIGTERM or SIGHUP (see locband._signals)
_SIGNAL_BASE = 128
_SIGINT = 2


class LocbandError(Exception):
    """An error locband raises on purpose: the message is one line, the exit code 1."""


class InputError(LocbandError, ValueError):
    """Bad user input: a file or a parameter is unusable (a ``ValueError`` for library callers)."""


class InputFileError(InputError):
    """An input file is missing, unreadable or does not fit the other inputs.

    The message names the file, what was expected and what was found.
    """


class OptionError(InputError):
    """A command-line option or host job parameter has a bad value; the message names it."""


class OutputFileError(InputError):
    """An output cannot be written: it would replace an input, its name is taken, the disk is full.

    The message names the file and the reason.
    """


class HostError(LocbandError):
    """A host program or protocol failed (a server refused, a job failed, a partner never came)."""


class RendezvousError(HostError):
    """The other half of a RELION hook call never arrived, failed, or cannot arrive."""


class CryosparcJobError(HostError):
    """A cryoSPARC object is missing or unusable, the server refused, or a queued job failed."""


class JobAborted(LocbandError):
    """The user asked RELION to abort the job (``RELION_JOB_ABORT_NOW`` appeared)."""


def exit_code(exc: BaseException) -> int:
    """The exit code for an exception that ended a command.

    128 + the signal number for a termination signal (130 for a plain ``KeyboardInterrupt``),
    1 for everything else (bad input, host failures, operating-system errors, bugs).
    """
    if isinstance(exc, KeyboardInterrupt):
        return int(getattr(exc, "exit_code", _SIGNAL_BASE + _SIGINT))
    return EXIT_FAILURE


def one_line(exc: BaseException) -> str | None:
    """The one-line message for an expected error, or None for a bug (whose traceback is wanted).

    Expected: :class:`LocbandError`; ``ValueError`` and ``TypeError`` (the engine's checks of
    arrays and settings name the parameter); ``OSError`` (a full disk, a missing permission:
    the reason of the operating system and the file).
    """
    if isinstance(exc, (LocbandError, ValueError, TypeError)):
        return str(exc)
    if isinstance(exc, OSError):
        name = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"{exc.strerror or exc}{name}"
    return None
