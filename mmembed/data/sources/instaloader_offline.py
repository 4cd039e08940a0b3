"""Reading instaloader's saved structures without ever reaching Instagram.

The properties of ``instaloader.Post``/``Profile`` fetch whatever the saved node lacks from
Instagram. A loader of training data must never do that (it would hang on rate limits, need a
login, and make a corpus depend on the day it was read), so the structures are bound to an
:class:`OfflineContext` whose every request method raises :class:`OfflineError` at once, and
their properties are read with :func:`get_field`, which turns "not in the saved node" (whether
instaloader would fetch it or the node is just incomplete) into :class:`FieldUnavailable`.
"""

from __future__ import annotations

from typing import Any

import instaloader  # the PyPI package: absolute imports never resolve to mmembed's modules
import requests

__all__ = [
    "NETWORK_METHODS",
    "FieldUnavailable",
    "OfflineContext",
    "OfflineError",
    "get_field",
    "optional_field",
]


class OfflineError(RuntimeError):
    """instaloader tried to reach Instagram while reading saved folders.

    Deliberately not an ``InstaloaderException`` nor a ``requests`` exception: instaloader catches
    and retries or logs those, and this must surface at once, untouched.
    """


#: Every :class:`instaloader.InstaloaderContext` method that sends a request, logs in, or builds a
#: real HTTP session. :class:`OfflineContext` replaces each with one that raises
#: :class:`OfflineError`. ``tests/test_instaloader_source.py`` checks this list against the
#: installed instaloader, so a new request method in a future version is noticed.
NETWORK_METHODS: tuple[str, ...] = (
    "test_login",
    "login",
    "two_factor_login",
    "load_session",
    "load_session_from_file",
    "do_sleep",
    "_follow_redirects",
    "get_json",
    "_graphql_session",
    "_csrf_token",
    "_web_api_tokens",
    "graphql_query",
    "doc_id_graphql_query",
    "graphql_node_list",
    "get_iphone_json",
    "_get_page",
    "get_page_data",
    "get_raw",
    "get_and_write_raw",
    "head",
)


class _OfflineSession(requests.Session):
    """A ``requests.Session`` that refuses every request: the backstop should a request method
    that :data:`NETWORK_METHODS` misses reach the session directly."""

    def request(self, method, url, *args, **kwargs):  # noqa: D102 - see class docstring
        raise OfflineError(f"refused {method} {url}: the instaloader source reads saved files only")

    def send(self, request, **kwargs):  # noqa: D102
        raise OfflineError(
            f"refused {request.method} {request.url}: the instaloader source reads saved files only"
        )


def _refuse(name: str):
    def refused(self, *args, **kwargs):
        raise OfflineError(
            f"InstaloaderContext.{name}() would contact Instagram; the instaloader source reads "
            "saved files only"
        )

    refused.__name__ = refused.__qualname__ = name
    refused.__doc__ = f"Raise :class:`OfflineError` instead of ``InstaloaderContext.{name}``."
    return refused


class OfflineContext(instaloader.InstaloaderContext):
    """An instaloader context that never touches the network.

    Structures loaded with it behave as usual for everything in the saved node; anything that
    would need a fetch raises :class:`OfflineError` immediately (no retries, no rate-limit sleep).
    """

    def __init__(self) -> None:
        super().__init__(sleep=False, quiet=True, max_connection_attempts=1, iphone_support=False)

    def get_anonymous_session(self) -> requests.Session:
        return _OfflineSession()


for _name in NETWORK_METHODS:
    setattr(OfflineContext, _name, _refuse(_name))
del _name


class FieldUnavailable(Exception):
    """A field that the saved node lacks (and that would need a fetch to get)."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(name, detail)
        self.name = name
        self.detail = detail

    @property
    def reason(self) -> str:
        return f"missing field: {self.name} ({self.detail})"


#: What a property of an instaloader structure raises when the saved node lacks the data.
_FIELD_ERRORS = (
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    IndexError,
    AssertionError,
    ArithmeticError,
    OSError,
    instaloader.InstaloaderException,
)


def get_field(structure: Any, name: str) -> Any:
    """Read property ``name`` of an instaloader structure, or raise :class:`FieldUnavailable`."""
    try:
        return getattr(structure, name)
    except OfflineError:
        raise FieldUnavailable(
            name,
            "not in the saved metadata; instaloader would fetch it from Instagram, and this "
            "loader is offline",
        ) from None
    except _FIELD_ERRORS as exc:
        detail = f"not in the saved metadata: {type(exc).__name__}: {exc}"
        raise FieldUnavailable(name, detail) from None


def optional_field(structure: Any, name: str, default: Any = None) -> Any:
    """Like :func:`get_field`, but ``default`` when the field is unavailable offline."""
    try:
        value = get_field(structure, name)
    except FieldUnavailable:
        return default
    return default if value is None else value
