"""Never print a secret: find passwords, tokens and URL credentials, and blank them out of messages.

locband takes no credentials on its command line (cryoSPARC's come from the environment or a
saved login), but users type them anyway: ``--password S3cret`` or ``--url
http://user:pw@host``. Every message the command line prints (argparse's usage errors, the
one-line errors, a traceback) goes through :func:`redact` first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

__all__ = ["MASK", "SECRET_ENVIRONMENT", "is_secret_option", "redact", "secrets_in", "url_credentials",
           "url_without_credentials"]

MASK = "***"

#: environment variables whose values are secrets
SECRET_ENVIRONMENT = ("CRYOSPARC_PASSWORD", "CRYOSPARC_LICENSE_ID")

# option names that carry a secret: --password, --passwd, --pass, --token, --secret, --api-key, --license ...
_SECRET_OPTION = re.compile(r"^--?[A-Za-z0-9_-]*?(pass(word|wd)?|secret|token|api[-_]?key|licen[cs]e(-id|_id)?|"
                            r"credentials?|auth)([-_][A-Za-z0-9_-]*)?$", re.IGNORECASE)
# scheme://userinfo@ : the user name and password part of a URL
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")


def is_secret_option(token: str) -> bool:
    """True for an option name (``--password``, ``--api-key=...``) whose value is a secret."""
    return bool(_SECRET_OPTION.match(token.split("=", 1)[0]))


def secrets_in(argv: Sequence[str], *, environ: dict[str, str] | None = None) -> set[str]:
    """The secret values in a command line (and in the secret environment variables).

    The value after a secret option (``--password S3cret``, ``--token=abc``), and the user
    information of every URL (``user:pw`` in ``http://user:pw@host``).
    """
    env = os.environ if environ is None else environ
    found: set[str] = set()
    args = list(argv)
    for i, tok in enumerate(args):
        if tok.startswith("-") and is_secret_option(tok):
            if "=" in tok:
                found.add(tok.split("=", 1)[1])
            elif i + 1 < len(args):
                found.add(args[i + 1])
        for m in _URL_USERINFO.finditer(tok):
            userinfo = m.group("userinfo")
            found.add(userinfo)
            found.update(part for part in userinfo.split(":", 1)[1:])
    found.update(env[name] for name in SECRET_ENVIRONMENT if env.get(name))
    return {s for s in found if s}


def url_credentials(url: str) -> bool:
    """True if ``url`` holds a user name or password (``scheme://user:pw@host``)."""
    return bool(_URL_USERINFO.search(url))


def url_without_credentials(url: str) -> str:
    """``url`` with its user information replaced by :data:`MASK`."""
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", url)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret, and the credentials of every URL, replaced by :data:`MASK`.

    Longer secrets are replaced first, so that one that contains another is removed whole.
    """
    out = url_without_credentials(text)
    for secret in sorted(set(secrets), key=len, reverse=True):
        out = out.replace(secret, MASK)
    return out
