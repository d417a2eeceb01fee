"""Helpers shared by the subcommands: error handling and progress display."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import TextIO

from locband._secrets import redact
from locband.engine.params import FilterParams
from locband.io.errors import InputFileError

__all__ = ["run_guarded", "TerminalProgress", "add_common_filter_args", "params_from_args", "threads_from_args"]


def run_guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Call a subcommand; errors become one line on stderr (no secret in it) and an exit code.

    Exit codes: 1 for bad input and for every error of the operating system (a full disk, a
    missing permission: the message names the file and the reason), 128 + the signal number
    after SIGINT (130), SIGTERM (143) or SIGHUP (129). Anything else is a bug: its traceback is
    printed (with secrets blanked out) and the exit code is 1.
    """
    secrets: frozenset[str] = getattr(args, "_secrets", frozenset())
    where = f"locband {args.command}"

    def say(text: str) -> None:
        print(redact(text, secrets), file=sys.stderr, flush=True)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return run(args)
    except (InputFileError, ValueError, TypeError) as exc:
        say(f"{where}: error: {exc}")
        return 1
    except OSError as exc:
        name = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        say(f"{where}: error: {exc.strerror or exc}{name}")
        return 1
    except KeyboardInterrupt as exc:
        say(f"{where}: {exc if str(exc) else 'interrupted by SIGINT'}; stopped")
        return int(getattr(exc, "exit_code", 130))
    except Exception:
        say(f"{where}: internal error, please report it with what follows:\n{traceback.format_exc().rstrip()}")
        return 1


class TerminalProgress:
    """Progress callback: a bar on a terminal, plain timestamped lines otherwise (logs)."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self._last_msg = ""

    def __call__(self, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        elapsed = time.perf_counter() - self.t0
        if self.tty:
            width = 30
            filled = int(round(width * fraction))
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {fraction * 100:5.1f}% {message[:40]:<40}")
            if fraction >= 1.0:
                self.stream.write("\n")
        elif message != self._last_msg:
            self.stream.write(f"[{elapsed:7.2f} s] {fraction * 100:5.1f}% {message}\n")
        self._last_msg = message
        self.stream.flush()


def add_common_filter_args(parser: argparse.ArgumentParser) -> None:
    """Options of the engine shared by every subcommand that filters."""
    d = FilterParams()
    g = parser.add_argument_group("filter settings")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads (default: the idle cores this process may use, from the CPU affinity and "
                        "the 1-minute load average; threads competing with busy processes run many times slower)")
    g.add_argument("--fft-backend", choices=("pyfftw", "scipy"), default=None,
                   help="FFT implementation on the CPU (default: scipy)")
    g.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where to filter: cpu (default), or cuda for a GPU (needs pip install 'locband[gpu]')")
    g.add_argument("--band-ratio", type=float, default=d.band_ratio, metavar="R",
                   help=f"ratio between band centres (default {d.band_ratio:.4f}, 3 bands per octave)")
    g.add_argument("--window-wavelengths", type=float, default=d.window_wavelengths, metavar="K",
                   help=f"local window sigma in wavelengths of each band (default {d.window_wavelengths})")
    g.add_argument("--noise-threshold", type=float, default=d.noise_threshold, metavar="Z",
                   help=f"suppress local signal below Z noise standard deviations (default {d.noise_threshold})")
    g.add_argument("--criterion", type=float, default=d.criterion, metavar="C",
                   help=f"local FSC threshold for local resolution (default {d.criterion})")
    g.add_argument("--band-snr", action="store_true", help="also write the per-band local SNR volumes")
    g.add_argument("--apply-mask", action="store_true", help="multiply the filtered maps by the mask")


def params_from_args(args: argparse.Namespace) -> FilterParams:
    """Build :class:`~locband.engine.params.FilterParams` from :func:`add_common_filter_args` options."""
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    return FilterParams(band_ratio=args.band_ratio, window_wavelengths=args.window_wavelengths,
                        noise_threshold=args.noise_threshold, criterion=args.criterion,
                        keep_band_snr=args.band_snr, apply_mask=args.apply_mask)


def threads_from_args(args: argparse.Namespace, *, concurrent: int = 1) -> int:
    """``--threads``, or the idle cores (:func:`locband._threads.default_threads`) when it is not given."""
    from locband._threads import default_threads

    return int(args.threads) if args.threads is not None else default_threads(concurrent=concurrent)
