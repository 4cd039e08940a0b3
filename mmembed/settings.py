"""Structured configs: the settings dataclasses, registered once in Hydra's ConfigStore.

Each is the default of its config group, so its defaults are written only in its dataclass
and Hydra type-checks an override (``rank.alpha=abc`` is refused before anything runs):

- ``rank``: :class:`mmembed.ranking.settings.RankSettings`;
- ``search``: :class:`mmembed.search.index.SearchSettings`;
- ``communities``: :class:`mmembed.communities.profiles.CommunitySettings`;
- ``trust``: :class:`mmembed.ranking.trust.TrustSettings`;
- ``app``: :class:`mmembed.app.settings.AppSettings` (``rank.py serve=true``).
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from mmembed.app.settings import AppSettings
from mmembed.communities.profiles import CommunitySettings
from mmembed.ranking.settings import RankSettings
from mmembed.ranking.trust import TrustSettings
from mmembed.search.index import SearchSettings

__all__ = ["register"]


def register() -> None:
    """Put the settings into Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    store.store(group="rank", name="default", node=RankSettings)
    store.store(group="search", name="default", node=SearchSettings)
    store.store(group="communities", name="default", node=CommunitySettings)
    store.store(group="trust", name="default", node=TrustSettings)
    store.store(group="app", name="default", node=AppSettings)


register()
