"""Secret values in what a person reads: which env values are secret, and masking them.

A variable is secret when its name, upper-cased and cut into words at ``_``,
``-`` and ``.``, has a word that:

- contains ``SECRET``, ``PASSWORD``, ``PASSWD`` or ``PASSPHRASE``
  (``CLIENT_SECRET``, ``DB_PASSWORD``, ``MYSQLPASSWD``);
- ends in ``TOKEN`` (``GITHUB_TOKEN``, ``NPMTOKEN``, ``TOKEN``; not
  ``TOKENIZERS_PARALLELISM``);
- is ``PASS`` or ``PWD``, except the shell's own ``PWD`` and ``OLDPWD``
  (``SMTP_PASS``, ``MYSQL_PWD``);
- is ``APIKEY``, or ``KEY`` as the last word (``API_KEY``, ``STRIPE_KEY``,
  ``AWS_SECRET_ACCESS_KEY``; not ``AWS_ACCESS_KEY_ID``, ``KEYBOARD``);
- ends in ``CREDENTIAL`` or ``CREDENTIALS`` (``DB_CREDENTIALS``,
  ``CREDENTIALS_JSON``), or is ``PRIVATEKEY``, or is ``PRIVATE`` followed by
  ``KEY`` (``JWT_PRIVATE_KEY_PEM``), unless the name ends in ``FILE``, ``PATH``
  or ``DIR``: that names where they are (``AWS_SHARED_CREDENTIALS_FILE``,
  ``PRIVATE_KEY_PATH``), as does ``GOOGLE_APPLICATION_CREDENTIALS`` by Google's
  convention;
- is ``PAT`` (a personal access token) in a name of several words
  (``GITHUB_PAT``, ``GH_PAT``; not ``PAT`` alone, ``PATH``, ``PATCH_LEVEL``,
  nor ``GITHUB_PAT_FILE``: the rule above);
- is ``AUTH`` as the whole name or its last word (``AUTH``, ``BASIC_AUTH``),
  except a switch (``ENABLE_AUTH``, ``DISABLE_AUTH``, ``USE_AUTH``,
  ``SKIP_AUTH``...); ``AUTHOR``, ``AUTH_URL``, ``OAUTH_CLIENT_ID`` and
  ``OAUTH_CALLBACK_URL`` say how to authenticate, not with what.

Whatever its name, a value holding a URL with a password shows the URL with
the password masked (``postgres://u:****@h/db``), and so does a
``password=...``-like pair in a query string or a connection string. So are,
wherever they appear: an HTTP credential (``Bearer <token>`` of 16 characters
or more with a digit, ``Basic <base64 of user:password>``: ``Bearer ****``), and
a token of a known form (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_`` or
``github_pat_`` then 20 or more characters; ``xoxb-``, ``xoxp-`` then 10 or more;
``sk-`` then 20 or more with a digit; ``glpat-`` then 20 or more; ``AKIA`` then 16
upper-case letters or digits): a value holding one is secret whatever its name.

:func:`mask_env` masks an env mapping (``describe``, a future ``env``
command, any export); :func:`mask_text` masks free text (error messages,
records of corral.log): URL passwords, credentials and tokens, ``NAME=value``
and ``'NAME': 'value'`` pairs whose name is secret, and any value given in
``known``. ``jlist`` and ``prettylist`` print PM2's shape untouched, for tools;
the files that hold values (state, dump, corral.log) are 0600.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "****"
MIN_KNOWN = 4  # a shorter secret value is not searched for in free text ("1" is everywhere)

_WORDS = re.compile(r"[_.\-]+")
_NOT_SECRET = frozenset(("PWD", "OLDPWD", "GOOGLE_APPLICATION_CREDENTIALS"))
_WHERE = frozenset(("FILE", "PATH", "DIR"))  # a name ending so holds where a secret is
# AUTH as the last word of these names turns authentication on or off: it holds no secret
_SWITCHES = frozenset(
    ("ENABLE", "ENABLED", "DISABLE", "DISABLED", "USE", "SKIP", "NO", "REQUIRE", "REQUIRED")
)
# a token of a known form, where it starts a word: each run of token characters is tried
# from its start only (the look-behind), so the search stays linear
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[bp]-[A-Za-z0-9\-]{10,}"
    r"|sk-(?=[A-Za-z_\-]*[0-9])[A-Za-z0-9_\-]{20,}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|AKIA[A-Z0-9]{16}(?![A-Za-z0-9])"
    r")"
)
# an HTTP credential: Bearer <token68>, Basic <base64>; the callback keeps what is none
_HTTP_CREDENTIAL = re.compile(
    r"(?i)(?<![A-Za-z0-9])(bearer|basic)([ \t]+)([A-Za-z0-9\-._~+/]+=*)(?![A-Za-z0-9\-._~+/=])"
)
# where a URL's authority ends (its password is found by hand: a regex would backtrack)
_AUTHORITY_END = re.compile(r"[\s/?#'\"]")
_SCHEME_CHAR = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
# password=..., pwd=... in a query string or a connection string (";Password=x;")
_PAIR_PASSWORD = re.compile(
    r"(?i)((?:^|[?&;\s])(?:password|passwd|pwd|pass|secret|token|api_?key|access_token)=)"
    r"([^&;,\s'\")}\]]+)"
)
# NAME=value, NAME='value', 'NAME': 'value', "NAME": "value" in free text
_NAMED = re.compile(  # names of at most 128 characters keep the search linear
    r"""(?<![\w.])(?P<q>['"]?)(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,127})(?P=q)"""
    r"""(?P<sep>=|(?<=['"]):\s?)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;&)}\]]+)"""
)


@functools.lru_cache(maxsize=8192)  # every log record and env asks again for the same few names
def is_secret_name(name: str) -> bool:
    """Whether a variable named ``name`` holds a secret (see the module's rules)."""
    upper = name.upper()
    if upper in _NOT_SECRET:
        return False
    words = [w for w in _WORDS.split(upper) if w]
    if "PUBLIC" in words:
        return False  # a public key names who someone is; it opens nothing
    for word in words:
        if any(part in word for part in ("SECRET", "PASSWORD", "PASSWD", "PASSPHRASE")):
            return True
        if word.endswith("TOKEN") or word in ("PASS", "PWD", "APIKEY"):
            return True
    if not words:
        return False
    if words[-1] == "KEY" and len(words) > 1:
        return True
    if words[-1] == "AUTH" and (len(words) == 1 or words[-2] not in _SWITCHES):
        return True
    if words[-1] in _WHERE:
        return False
    if "PAT" in words and len(words) > 1:
        return True
    for index, word in enumerate(words):
        if word.endswith(("CREDENTIAL", "CREDENTIALS")) or word == "PRIVATEKEY":
            return True
        if word == "PRIVATE" and "KEY" in words[index + 1 :]:
            return True
    return False


def is_secret(name: str, value: Any = None) -> bool:
    """Whether showing ``name=value`` would show a secret: a secret name, or a value
    holding a URL password or a ``password=`` pair."""
    if is_secret_name(name):
        return True
    return isinstance(value, str) and mask_value(value) != value


def _url_passwords(text: str) -> list[tuple[int, int]]:
    """The (start, end) of each URL password in ``text``: ``scheme://user:PASSWORD@host``,
    the last ``@`` before the path ending it. Linear in ``len(text)``."""
    spans = []
    found = text.find("://")
    while found != -1:
        start = found + 3
        match = _AUTHORITY_END.search(text, start)
        end = match.start() if match else len(text)
        if found > 0 and text[found - 1] in _SCHEME_CHAR:
            at = text.rfind("@", start, end)
            colon = text.find(":", start, at) if at != -1 else -1
            if colon != -1 and colon + 1 < at:
                spans.append((colon + 1, at))
        found = text.find("://", max(end, start))
    return spans


def mask_value(value: str) -> str:
    """``value`` with the passwords of its URLs and ``password=`` pairs masked, and its
    HTTP credentials and known tokens."""
    if "://" in value:
        for start, end in reversed(_url_passwords(value)):
            value = value[:start] + MASK + value[end:]
    if "=" in value:
        value = _PAIR_PASSWORD.sub(lambda m: m[1] + MASK, value)
    return _mask_tokens(value)


def _mask_tokens(text: str) -> str:
    """``text`` with its known tokens and HTTP credentials masked."""
    text = _TOKEN.sub(MASK, text)
    return _HTTP_CREDENTIAL.sub(_mask_credential, text)


def _is_credential(scheme: str, credential: str) -> bool:
    """Whether ``credential`` after ``Bearer``/``Basic`` is one: a Bearer token of 16
    characters or more with a digit, or the base64 of ``user:password``."""
    if scheme.lower() == "bearer":
        return len(credential) >= 16 and any(c.isdigit() for c in credential)
    if len(credential) < 8 or len(credential) % 4 or len(credential) > 4096:
        return False
    try:
        return b":" in base64.b64decode(credential, validate=True)
    except (binascii.Error, ValueError):
        return False


def _mask_credential(match: re.Match[str]) -> str:
    if not _is_credential(match[1], match[3]):
        return match[0]
    return match[1] + match[2] + MASK


def _token_spans(value: str) -> list[tuple[int, int]]:
    """The (start, end) of each known token and HTTP credential in ``value``."""
    spans = [m.span() for m in _TOKEN.finditer(value)]
    spans += [m.span(3) for m in _HTTP_CREDENTIAL.finditer(value) if _is_credential(m[1], m[3])]
    return spans


def mask(name: str, value: Any) -> Any:
    """What to show for ``name=value``: :data:`MASK` for a secret name (an empty or
    missing value stays as is), else the value with its URL passwords masked."""
    if value is None or value == "":
        return value
    if is_secret_name(name):
        return MASK
    return mask_value(value) if isinstance(value, str) else value


def mask_env(env: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``env`` fit to show: every secret value masked."""
    return {name: mask(name, value) for name, value in env.items()}


def secret_values(env: Mapping[str, Any]) -> set[str]:
    """The values of ``env`` that :func:`mask_text` should hide wherever they appear."""
    found = set()
    for name, value in env.items():
        if not isinstance(value, str):
            continue
        if is_secret_name(name) and len(value) >= MIN_KNOWN:
            found.add(value)
        spans = _url_passwords(value) if "://" in value else []
        for start, end in spans + _token_spans(value):
            if end - start >= MIN_KNOWN:
                found.add(value[start:end])
    return found


def mask_text(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with secrets masked: the ``known`` values, URL passwords, and the
    values of ``NAME=value`` or ``'NAME': 'value'`` pairs whose name is secret."""
    for value in sorted(known, key=len, reverse=True):
        if len(value) >= MIN_KNOWN and value in text:
            text = text.replace(value, MASK)
    if "=" not in text and ":" not in text:
        return _mask_tokens(text)
    text = mask_value(text)
    return _NAMED.sub(_mask_named, text)


def mask_args(args: Iterable[Any]) -> list[str]:
    """Command-line arguments with secrets masked: as :func:`mask_text` each, and the
    argument after a flag with a secret name and no ``=`` (``--password hunter2``)."""
    shown: list[str] = []
    after_secret_flag = False
    for arg in (str(a) for a in args):
        shown.append(MASK if after_secret_flag and arg else mask_text(arg))
        flag = arg.lstrip("-")
        after_secret_flag = arg.startswith("-") and "=" not in arg and is_secret_name(flag)
    return shown


def _mask_named(match: re.Match[str]) -> str:
    if not is_secret_name(match["name"]):
        return match[0]
    value = match["value"]
    if value[:1] in ("'", '"') and len(value) >= 2:
        shown = value[0] + MASK + value[0]
    else:
        shown = MASK
    return match[0][: match.start("value") - match.start()] + shown


def mask_data(value: Any, known: Iterable[str] = ()) -> Any:
    """A copy of ``value`` (dicts, lists, strings) with secrets masked: a dict's entry
    under a secret name entirely, every string as :func:`mask_text` does."""
    known = tuple(known)
    if isinstance(value, str):
        return mask_text(value, known)
    if isinstance(value, Mapping):
        return {
            k: (
                MASK
                if isinstance(k, str) and is_secret_name(k) and v not in (None, "")
                else mask_data(v, known)
            )
            for k, v in value.items()
        }
    if isinstance(value, list) or type(value) is tuple:
        return type(value)(mask_data(v, known) for v in value)
    return value


class KnownSecrets:
    """The secret values (:func:`secret_values`) of the envs ``envs()`` gives, for
    :func:`mask_text`; each env is read once while it is the same object."""

    def __init__(
        self,
        envs: Callable[[], Iterable[Mapping[str, Any]]],
        version: Callable[[], object] | None = None,
    ) -> None:
        self._envs = envs
        self._version = version  # equal while the envs are the same ones: no look at all
        self._seen_version: object = None
        self._cache: dict[int, tuple[Mapping[str, Any], frozenset[str]]] = {}
        self._seen: tuple[int, ...] = ()
        self._values: frozenset[str] = frozenset()

    def __call__(self) -> frozenset[str]:
        if self._version is not None:
            version = self._version()
            if version == self._seen_version:
                return self._values
            self._seen_version = version
        envs = list(self._envs())
        seen = tuple(map(id, envs))  # the cache holds the last envs alive: same ids, same objects
        if seen == self._seen:
            return self._values
        self._values = frozenset(self._union(envs))
        self._seen = seen
        return self._values

    def _union(self, envs: list[Mapping[str, Any]]) -> set[str]:
        cache: dict[int, tuple[Mapping[str, Any], frozenset[str]]] = {}
        values: set[str] = set()
        for env in envs:
            hit = self._cache.get(id(env))
            if hit is None or hit[0] is not env:
                hit = (env, frozenset(secret_values(env)))
            cache[id(env)] = hit
            values |= hit[1]
        self._cache = cache
        return values
