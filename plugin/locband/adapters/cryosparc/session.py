"""A session with a cryoSPARC server (cryosparc-tools 5.x): connecting, calling it, logging to a job.

Credentials come from the environment (``CRYOSPARC_BASE_URL`` or ``CRYOSPARC_MASTER_HOSTNAME`` +
``CRYOSPARC_BASE_PORT``, ``CRYOSPARC_EMAIL``, ``CRYOSPARC_PASSWORD``) or from the token saved by
``python -m cryosparc.tools login``; never from the command line. A URL with a user name or
password in it is refused, with the credentials blanked out of the message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from locband._secrets import redact, url_credentials, url_without_credentials
from locband.errors import CryosparcJobError, HostError, OptionError
from locband.io.cs import require_cryosparc

__all__ = ["connect", "disconnect", "api_call", "JobLog"]


def connect(url: str | None = None) -> Any:
    """A ``cryosparc.tools.CryoSPARC`` session from the environment or the saved login.

    Raises
    ------
    HostError
        cryosparc-tools missing or 4.x, or the server refuses.
    OptionError
        No address, or a URL with credentials in it.
    """
    cryosparc = require_cryosparc("cryosparc")
    major = int(str(getattr(cryosparc, "__version__", "0")).split(".")[0] or 0)
    if major < 5:
        raise HostError(f"cryosparc-tools {cryosparc.__version__} is installed; the online cryoSPARC commands "
                             "need the 5.x client for a cryoSPARC 5 server (pip install 'cryosparc-tools~=5.0.0'). "
                             "For a 4.x server use 'locband cryosparc offline' (see the README)")
    tools = require_cryosparc("cryosparc.tools")
    base_url = url or os.environ.get("CRYOSPARC_BASE_URL") or None
    host = os.environ.get("CRYOSPARC_MASTER_HOSTNAME") or None
    port = os.environ.get("CRYOSPARC_BASE_PORT") or None
    auth = {"email": os.environ.get("CRYOSPARC_EMAIL") or None,
            "password": os.environ.get("CRYOSPARC_PASSWORD") or None}
    if not base_url and not host and not port:
        raise OptionError("no cryoSPARC address: set CRYOSPARC_BASE_URL (e.g. http://host:39000) or "
                             "CRYOSPARC_MASTER_HOSTNAME and CRYOSPARC_BASE_PORT, or give --url")
    if base_url and url_credentials(base_url):  # refused, and never echoed: the message shows *** instead
        where = "--url" if url else "CRYOSPARC_BASE_URL"
        raise OptionError(f"{where} must not hold a user name or password ({url_without_credentials(base_url)}): "
                             "set CRYOSPARC_EMAIL and CRYOSPARC_PASSWORD, or log in once with "
                             "'python -m cryosparc.tools login'")
    try:
        if base_url:
            return tools.CryoSPARC(base_url, host=None, base_port=None, **auth)
        return tools.CryoSPARC(None, host=host, base_port=port, **auth)
    except (ValueError, RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = redact(first, [v for v in auth.values() if v and v != auth["email"]])
        raise HostError(f"cannot connect to cryoSPARC ({base_url or f'{host}:{port}'}): {first}; credentials "
                        "come from CRYOSPARC_EMAIL + CRYOSPARC_PASSWORD or 'python -m cryosparc.tools login'") from None


def disconnect(cs: Any) -> None:
    """Close the session's HTTP connections (the client otherwise leaves them to the garbage collector)."""
    client = getattr(getattr(cs, "api", None), "_client", None)
    if client is not None:
        client.close()


def api_call(what: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, with the client's API errors as one-line :class:`~locband.errors.CryosparcJobError` naming ``what``."""
    errors = require_cryosparc("cryosparc.errors")
    try:
        return fn()
    except errors.APIError as exc:
        if getattr(exc, "code", None) == 404:
            raise CryosparcJobError(f"{what} does not exist") from None
        raise CryosparcJobError(f"{what}: cryoSPARC refused: {exc}") from None


class JobLog:
    """Engine progress -> one live-updating line of the job's event log."""

    def __init__(self, job: Any, *, step: float = 0.1) -> None:
        self.job, self.step, self.last = job, step, -1.0

    def __call__(self, fraction: float, message: str) -> None:
        """Log the progress when it has moved by ``step`` since the last line (and at the end)."""
        if fraction >= 1.0 or fraction - self.last >= self.step:
            self.last = fraction
            self.job.log(f"locband: {fraction * 100:3.0f}% {message}", name="progress")
