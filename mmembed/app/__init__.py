"""The served web app: ``python rank.py serve=true`` (FastAPI + uvicorn).

- :mod:`.settings`: ``app.*``, the limits on uploads and how many rankings are kept;
- :mod:`.uploads`: a request's photos into its temporary folder, under names the server makes;
- :mod:`.service`: the bundle's ranker, loaded once, and the rankings it answered;
- :mod:`.pages`: the HTML pages, from the templates ``report.html`` is made with;
- :mod:`.server`: the routes (pages and the JSON API), :func:`serve` and :func:`running`.

FastAPI is imported only by :mod:`.server`, so ``rank.py`` without ``serve=true`` never loads it.
"""

from mmembed.app.settings import AppSettings

__all__ = ["AppSettings"]
