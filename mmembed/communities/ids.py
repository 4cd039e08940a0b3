"""Short ids for communities: names a shell and Hydra take without quoting.

A community's full name may hold characters that Hydra's override grammar refuses unquoted
(``#rockclimbing``, ``neon · cocktails · party``). Each community also gets an id made of
``[a-z0-9_-]`` only:

- an account, a group or a profile-folder source: its slug (``crag_daily``);
- a hashtag source: ``tag-`` + the slug (``#rockclimbing`` → ``tag-rockclimbing``);
- a cluster: the slug of its name (``neon · cocktails · party`` → ``neon-cocktails-party``);
- a name that carries its kind because two communities share it (``source:natgeo``):
  ``source-natgeo``.

The slug lower-cases, folds accents to ASCII (NFKD) and turns every other run of characters
into one ``-``. When two communities would get the same id, each of them gets its kind as a
prefix as well (``cluster-…``), so an id names one community in its bundle and never changes
with the order communities are listed in.

:func:`resolve_community` accepts the full name, the id, or, for a hashtag, its bare slug
(``rockclimbing``) when no other community has that id.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Mapping

__all__ = ["community_ids", "resolve_community", "slug"]


def slug(text: str) -> str:
    """``text`` in ``[a-z0-9_-]``: lower case, accents folded, other runs of characters → ``-``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9_]+", "-", ascii_text.lower()).strip("-_") or "community"


def _base_id(name: str, kind: str) -> str:
    if ":" in name and name.split(":", 1)[0] in ("account", "source", "group", "cluster"):
        prefix, rest = name.split(":", 1)
        return f"{prefix}-{_base_id(rest, kind)}"
    if kind == "source" and name.startswith("#"):
        return f"tag-{slug(name[1:])}"
    return slug(name)


def community_ids(kinds: Mapping[str, str]) -> dict[str, str]:
    """Community name → its id, for ``kinds`` (name → kind) of one bundle (see module doc)."""
    base = {name: _base_id(name, kind) for name, kind in kinds.items()}
    used = Counter(base.values())
    ids = {name: (b if used[b] == 1 else f"{kinds[name]}-{b}") for name, b in base.items()}
    shared: dict[str, list[str]] = {}
    for name in sorted(ids):
        shared.setdefault(ids[name], []).append(name)
    for same in (names for names in shared.values() if len(names) > 1):  # still shared
        for n, name in enumerate(same, start=1):
            ids[name] = f"{ids[name]}-{n}"
    return ids


def resolve_community(query: str, kinds: Mapping[str, str]) -> str | None:
    """The full name of the community ``query`` names (full name, id, or a hashtag's bare
    slug), case-insensitively; ``None`` when it names none."""
    if query in kinds:
        return query
    lowered = query.strip().lower()
    for name in kinds:
        if name.lower() == lowered:
            return name
    by_id = {i: name for name, i in community_ids(kinds).items()}
    if lowered in by_id:
        return by_id[lowered]
    tag = by_id.get(f"tag-{slug(lowered.lstrip('#'))}")
    if tag is not None and slug(lowered) not in by_id:
        return tag
    return by_id.get(slug(lowered))
