"""Where the API key and host come from: the environment first, then a config file.

The config file is TOML, at ``$VIDBATCH_CONFIG``, else ``$XDG_CONFIG_HOME/vidbatch/config.toml``,
else ``~/.config/vidbatch/config.toml``::

    api_key = "..."
    api_host = "https://api.minimax.io"   # optional

    [[prices.global]]                     # optional: your own prices (see vidbatch.prices)
    model = "T2V-01"
    duration = 6
    price = "0.20"

A file that holds a key is used only when it is readable by nobody else (mode 0600 or
stricter), as ssh treats its keys; otherwise vidbatch stops with a message saying how to fix it,
instead of using a key others can read. A file without a key (only a host, or [prices]) may be
readable by all. Whatever it holds, it must be a regular file of the current user's that nobody
else can write: whoever can write it chooses the host the key (from the environment too) is
sent to, and the prices ``--max-cost`` trusts. Precedence, first
wins: ``--api-host`` (host only), ``MINIMAX_API_KEY`` / ``MINIMAX_API_HOST``, the config file,
then :data:`vidbatch.facts.DEFAULT_HOST`. The key's value never appears in a message.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import facts
from .errors import ConfigError

ENV_KEY = "MINIMAX_API_KEY"
ENV_HOST = "MINIMAX_API_HOST"
ENV_CONFIG = "VIDBATCH_CONFIG"
CONFIG_KEYS = ("api_key", "api_host")
#: Tables of the same file that other modules read and check: [prices] (vidbatch.prices).
CONFIG_TABLES = ("prices",)


#: Where the host came from when it was passed in (the CLI's option; a library caller may say otherwise).
HOST_OPTION = "--api-host"
HOST_DEFAULT = "the default"


@dataclass(frozen=True)
class Credentials:
    key: str | None
    host: str
    key_source: str | None  # "MINIMAX_API_KEY" or the config file's path; never the key itself
    #: Where ``host`` came from, in words for a message: "--api-host", "the MINIMAX_API_HOST
    #: environment variable", "the config file <path>" or "the default".
    host_source: str = HOST_DEFAULT

    def __repr__(self) -> str:
        return (
            f"Credentials(key={'<secret>' if self.key else None}, host={self.host!r}, "
            f"key_source={self.key_source!r}, host_source={self.host_source!r})"
        )


def config_path() -> Path:
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vidbatch" / "config.toml"


def read_config(path: Path | None = None) -> dict[str, Any]:
    """The config file as parsed TOML, settings and tables; {} when there is none. Refuses a file
    others could write, one holding a key others could read, and names it has no use for."""
    path = path or config_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        if os.environ.get(ENV_CONFIG):
            raise ConfigError(f"{ENV_CONFIG} names {path}, which does not exist") from None
        return {}
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"config file {path} is not a regular file")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))  # as manifests: a BOM is not an error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o044 and data.get("api_key") not in (None, ""):  # only a key is a secret: a host or prices are not
        raise ConfigError(f"config file {path} holds an API key but others can read it (mode {mode:04o}); run `chmod 600 {path}`")
    # Whoever can write the file chooses the host a key is sent to, the file's or the environment's.
    if st.st_uid != os.geteuid():
        raise ConfigError(f"config file {path} belongs to another user, who could send your API key to any host; it must be yours")
    if mode & 0o022:
        raise ConfigError(
            f"config file {path} can be written by others (mode {mode:04o}), who could send your API key to any host; "
            f"run `chmod 600 {path}`"
        )
    unknown = sorted(set(data) - set(CONFIG_KEYS) - set(CONFIG_TABLES))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting {', '.join(unknown)}; settings are {', '.join(CONFIG_KEYS)}, "
            f"and the tables {', '.join(f'[{t}]' for t in CONFIG_TABLES)}"
        )
    return data


def load_config(path: Path | None = None) -> dict[str, str]:
    """The config file's settings (its tables are read by the modules they belong to); {} when
    there is none. Refuses what :func:`read_config` refuses."""
    path = path or config_path()
    settings = {name: value for name, value in read_config(path).items() if name in CONFIG_KEYS}
    for name, value in settings.items():
        if not isinstance(value, str):
            raise ConfigError(f"config file {path}: {name} must be a string")
    return settings


def credentials(host: str | None = None, *, host_given_by: str = HOST_OPTION) -> Credentials:
    """The key and host to use, by the precedence in the module docstring, and where each came
    from. ``host_given_by`` names the source of a ``host`` passed in. The config file is read
    only when the environment leaves something to find."""
    key = (os.environ.get(ENV_KEY) or "").strip() or None
    key_source = ENV_KEY if key else None
    host_source = HOST_DEFAULT
    if host:
        host_source = host_given_by
    elif os.environ.get(ENV_HOST):
        host, host_source = os.environ[ENV_HOST], f"the {ENV_HOST} environment variable"
    if key is None or not host:
        path = config_path()
        settings = load_config(path)
        if key is None and settings.get("api_key", "").strip():
            key, key_source = settings["api_key"].strip(), str(path)
        if not host and settings.get("api_host"):
            host, host_source = settings["api_host"], f"the config file {path}"
    if key is not None:
        problem = key_problem(key)
        if problem:
            raise ConfigError(f"the API key in {key_source} {problem}")
    return Credentials(key, (host or facts.DEFAULT_HOST).rstrip("/"), key_source, host_source)


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an API key, in words that never repeat it, or None.

    The key travels in an HTTP header (``Authorization: Bearer KEY``), which holds Latin-1 text
    without control characters: a key with anything else is a copy-and-paste accident (a
    character from another alphabet, a line break) that would crash the first request or, with
    CR/LF, inject a header. A key has no spaces either: one with a space is "Bearer KEY" or a
    key pasted in two pieces."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        return (
            "contains a line break or another control character; copy it again from your MiniMax "
            "account's API keys page"
        )
    if any(c.isspace() for c in key):
        return (
            "contains a space (the key alone goes there, without \"Bearer\"); copy it again from your MiniMax "
            "account's API keys page"
        )
    try:
        key.encode("latin-1")
    except UnicodeEncodeError:
        return (
            "contains characters an HTTP header cannot carry (letters from outside Latin-1); "
            "copy it again from your MiniMax account's API keys page"
        )
    return None


def missing_key_message() -> str:
    return (
        f"no MiniMax API key: set it with `export {ENV_KEY}=...` (the key from your MiniMax account's "
        f"API keys page), or put `api_key = \"...\"` in {config_path()} (chmod 600); "
        "or use --sim to try vidbatch without one"
    )
