"""Command lines as people type them, made into overrides Hydra accepts.

Hydra's override grammar refuses some characters unquoted: ``community=#rockclimbing`` fails
with a lexer error, and so do a cluster community's name (``neon · cocktails · party``) or a
folder with a ``#`` in it. For the settings that hold free text (:data:`FREE_TEXT`), a value
Hydra cannot parse is quoted for it, so the shell command works as written.

A mistyped setting (``comunity=x``) gets Hydra's hint to append it with ``+comunity=x``,
which would add a setting nothing reads. :func:`prepare` answers it instead with the existing
setting it is close to. A key close to none (one a chosen config adds, like ``refine.*`` with
``cluster=dec``) is left to Hydra.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

__all__ = ["FREE_TEXT", "UnknownSetting", "known_settings", "prepare"]

#: Settings whose values are names, paths or URL patterns, quoted when Hydra cannot parse them
#: (``data.urls='DIR/shard-{000000..000099}.tar'``: the shell drops the quotes, and Hydra reads
#: braces as a dictionary).
FREE_TEXT = ("community", "images", "bundle", "out", "ckpt_path", "bundle_name", "data.urls")


class UnknownSetting(ValueError):
    """A ``key=value`` argument whose key the app does not have."""


def known_settings(config: str | Path) -> set[str]:
    """The top-level keys of the app's primary config file and the config groups of its
    defaults list, plus ``hydra``."""
    from omegaconf import OmegaConf

    config = Path(config)
    cfg = OmegaConf.load(config)
    keys = {str(k) for k in cfg.keys()} | {"hydra"}
    for entry in cfg.get("defaults") or []:
        if isinstance(entry, str):
            keys.add(entry.split("/")[0])
        else:
            keys.update(str(k).split("/")[0].split(" ")[-1] for k in entry)
    return keys - {"_self_", "defaults"}


def _parses(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        OverridesParser.create().parse_override(override)
    except HydraException:
        return False
    return True


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _join_repeated(argv: list[str], key: str) -> list[str]:
    """``key=a key=b ...`` as one list override ``key=['a','b',...]``: an unquoted
    ``data.urls=DIR/shard-{000000..000009}.tar`` reaches us brace-expanded by the shell into
    ten arguments, of which Hydra would keep the last."""
    values = [a.partition("=")[2] for a in argv if a.startswith(key + "=")]
    if len(values) < 2:
        return argv
    first = next(i for i, a in enumerate(argv) if a.startswith(key + "="))
    rest = [a for a in argv if not a.startswith(key + "=")]
    rest.insert(first, f"{key}=[{','.join(_quote(v) for v in values)}]")
    return rest


def prepare(argv: Sequence[str], config: str | Path) -> list[str]:
    """``argv`` (without the program name) with free-text values quoted for Hydra; raises
    :class:`UnknownSetting` for a ``key=value`` whose top-level key the app does not have but
    is close to one it has.

    Flags (``--help``, ``-m``), ``+key=``/``++key=``/``~key`` (adding or deleting on
    purpose) and values Hydra already parses pass through unchanged.
    """
    argv = _join_repeated(list(argv), "data.urls")
    known: set[str] | None = None
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if arg.startswith(("-", "+", "~")) or not sep:
            out.append(arg)
            continue
        top = key.split(".")[0].split("/")[0]
        if known is None:
            known = known_settings(config)
        close = [] if top in known else difflib.get_close_matches(top, sorted(known), 3, 0.75)
        if close:
            raise UnknownSetting(f"unknown setting {top!r} in {arg!r}: did you mean "
                                 f"{' or '.join(f'{c}=' for c in close)}? (--help lists the "
                                 "settings)")
        if key in FREE_TEXT and not _parses(arg):
            arg = f"{key}={_quote(value)}"
        out.append(arg)
    return out
