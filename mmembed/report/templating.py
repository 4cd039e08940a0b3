"""The Jinja2 environment of every mmembed page: templates in ``mmembed/report/templates/``.

One environment serves the files ``train.py`` and ``rank.py`` write (``communities.html``,
``report.html``) and the web app's pages, so they share one layout (``base.j2``), one set of
macros and partials, and one stylesheet per page kind under ``css/``. Autoescape is on for every
template, and undefined names raise (``StrictUndefined``): all text from a result or a bundle
(names, captions, hashtags, reasons) is escaped, and nothing scraped is ever marked safe.

Whitespace: ``trim_blocks`` and ``lstrip_blocks`` let a tag sit on its own line without leaving
an empty line in the page, and ``keep_trailing_newline`` makes a line ``{% include "x.j2" %}``
stand for exactly the lines of ``x.j2``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared environment (built once; templates are compiled on first use and cached)."""
    return Environment(
        loader=PackageLoader("mmembed", "report/templates"),
        autoescape=select_autoescape(enabled_extensions=("j2", "html"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(name: str, context: Mapping[str, Any]) -> str:
    """Template ``name`` (e.g. ``"report.j2"``) rendered with ``context``, as one string."""
    return environment().get_template(name).render(context)


def generate(name: str, context: Mapping[str, Any]) -> Iterator[str]:
    """Template ``name`` rendered in chunks, so a large page is written without one big string."""
    return environment().get_template(name).generate(context)
