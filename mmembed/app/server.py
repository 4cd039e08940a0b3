"""The served app: FastAPI routes over one :class:`~mmembed.app.service.RankService`.

Pages (HTML rendered on the server, :mod:`mmembed.app.pages`)::

    GET  /                          the upload form (?community=ID chooses the community)
    GET  /communities               the communities, searchable (?q=words), and the clusters
    GET  /pictures/clusters/N.png   cluster N's contact sheet from the bundle
    POST /rank                      the form's upload; answers 303 to the ranking's page
    GET  /results/ID                a ranking: report.html's content
    GET  /results/ID/ranking.csv    its CSV, and ranking.json its JSON

JSON API (OpenAPI docs at ``/docs``, served from fastapi-offline's copy of Swagger UI, so they
work without a network)::

    GET  /api/health                {"status": "ok", "bundle", "k", "communities"}
    GET  /api/communities           {"bundle", "communities": [summary, ...]}
    POST /api/rank                  multipart: files (repeated), community, followers?, alpha?
                                    -> ranking.json's schema; unreadable files are "skipped"

A request past a limit (``app.*``) is answered 413 and one that cannot be ranked 422, each with
a message that says why and what to do: JSON ``{"detail", "skipped"}`` under ``/api``, a page
otherwise. :func:`serve` is ``python rank.py serve=true``; :func:`running` serves an app from a
thread (tests, the screenshot script).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from mmembed.app import pages
from mmembed.app.service import Ranking, RankService
from mmembed.app.uploads import Refused
from mmembed.fileio import dumps_json
from mmembed.report.files import csv_text

__all__ = ["create_app", "running", "serve"]

#: The routes that take uploads.
UPLOADS = ("/rank", "/api/rank")
_FORM_FIELDS = 10  # community, followers, alpha, with room to spare


def _number(text: str | None, name: str) -> float | None:
    """A form's number field: empty is ``None``; anything else must be a number."""
    if text is None or not str(text).strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise Refused(422, f"{name} must be a number, got {text!r}") from None


class _DeclaredTooLarge:
    """Answers 413 at once, before reading a byte of it, an upload whose declared
    ``Content-Length`` is past the limit. (A chunked body past it is stopped by FastAPI's own
    ``max_body_size`` while it streams in.)"""

    def __init__(self, app, limit: int, respond):
        self.app, self.limit, self.respond = app, limit, respond

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] in UPLOADS:
            length = Headers(scope=scope).get("content-length", "")
            if length.isdigit() and int(length) > self.limit:
                await self.respond(scope["path"])(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(service: RankService) -> FastAPI:
    """The FastAPI app over ``service`` (see the module docstring)."""
    limits = service.app
    app = FastAPIOffline(  # /docs from the package's own Swagger UI files, no CDN
        title="mmembed",
        summary="Rank new photos for a social-media community.",
        description=(f"Serving bundle `{service.bundle_name}`. Upload photos to `POST "
                     "/api/rank` with the community to target; the answer has the schema of "
                     "`ranking.json` (`python rank.py`). Pages: `/` (upload), `/communities`."),
        version="1",
    )
    app.state.service = service
    too_large = (f"upload too large: at most {limits.max_upload_mb:g} MiB of photos per request "
                 f"(app.max_upload_mb) and {limits.max_file_mb:g} MiB per photo "
                 "(app.max_file_mb); send fewer or smaller photos")
    too_many = (f"too many files: at most {limits.max_files} photos per request "
                "(app.max_files); send them in several requests")

    def refusal(path: str, status: int, message: str, skipped=()) -> Response:
        if path.startswith("/api/"):
            return JSONResponse({"detail": message, "skipped": [s.to_dict() for s in skipped]},
                                status_code=status)
        return HTMLResponse(pages.error_page(service, status, message, skipped),
                            status_code=status)

    app.add_middleware(_DeclaredTooLarge, limit=limits.max_body_bytes,
                       respond=lambda path: refusal(path, 413, too_large))

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return refusal(request.url.path, exc.status, exc.message, exc.skipped)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        path = request.url.path
        if exc.status_code == 413:
            return refusal(path, 413, too_large)
        if exc.status_code == 400 and str(exc.detail).startswith("Too many files"):
            return refusal(path, 413, too_many)  # Starlette's form parser past app.max_files
        if path.startswith(("/api/", "/static-offline-docs/")) or path in ("/docs", "/redoc",
                                                                            "/openapi.json"):
            return await http_exception_handler(request, exc)
        return refusal(path, exc.status_code, str(exc.detail))

    upload_limits = {"max_body_size": limits.max_body_bytes,
                     "form_limits": {"max_files": limits.max_files,
                                     "max_fields": _FORM_FIELDS}}

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def upload_form(community: str | None = None) -> str:
        return pages.upload_page(service, community)

    @app.get("/communities", response_class=HTMLResponse, include_in_schema=False)
    def communities_page(q: str = "") -> str:
        return pages.communities_page(service, q)

    @app.get("/pictures/clusters/{cluster}.png", include_in_schema=False)
    def cluster_picture(cluster: int) -> FileResponse:
        path = service.cluster_picture(cluster)
        if path is None:
            raise HTTPException(404, f"no picture of cluster {cluster} in this bundle")
        return FileResponse(path, media_type="image/png")

    @app.post("/rank", include_in_schema=False, **upload_limits)
    def rank_form(files: Annotated[list[UploadFile], File()],
                  community: Annotated[str, Form()],
                  followers: Annotated[str | None, Form()] = None,
                  alpha: Annotated[str | None, Form()] = None) -> RedirectResponse:
        ranking = service.rank([(f.filename, f.file) for f in files], community,
                               _number(alpha, "alpha"), _number(followers, "followers"))
        return RedirectResponse(f"/results/{ranking.id}", status_code=303)

    def stored(ranking_id: str) -> Ranking:
        ranking = service.ranking(ranking_id)
        if ranking is None:
            raise HTTPException(404, f"no ranking {ranking_id!r} here: only the newest "
                                f"{limits.keep_results} are kept (app.keep_results), and "
                                "none survives a restart; rank the photos again")
        return ranking

    @app.get("/results/{ranking_id}", response_class=HTMLResponse, include_in_schema=False)
    def results_page(ranking_id: str) -> str:
        return pages.results_page(service, stored(ranking_id))

    @app.get("/results/{ranking_id}/ranking.csv", include_in_schema=False)
    def results_csv(ranking_id: str) -> Response:
        return Response(csv_text(stored(ranking_id).result), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="ranking.csv"'})

    @app.get("/results/{ranking_id}/ranking.json", include_in_schema=False)
    def results_json(ranking_id: str) -> Response:
        return Response(dumps_json(stored(ranking_id).result), media_type="application/json",
                        headers={"Content-Disposition": 'attachment; filename="ranking.json"'})

    # ------------------------------------------------------------------ JSON API
    @app.get("/api/health", tags=["api"])
    def health() -> dict:
        """The bundle being served, once its model is loaded."""
        return {"status": "ok", "bundle": service.bundle_name, "k": service.ranker.k,
                "communities": len(service.ranker.communities)}

    @app.get("/api/communities", tags=["api"])
    def communities() -> dict:
        """Every community of the bundle: name, short `id` (what `community` takes), kind,
        size, profile over the clusters, top clusters, hashtags and mentions."""
        return {"bundle": service.bundle_name, "communities": service.communities()}

    @app.post("/api/rank", tags=["api"], **upload_limits, responses={
        200: {"description": "The ranking, with `ranking.json`'s schema: `photos` by rank "
                             "(1 = best), `skipped` (each unreadable upload and why), "
                             "`community`, `settings`, `post` (the photos to post)."},
        413: {"description": "Too many files, or too many bytes."},
        422: {"description": "Unknown community, a bad setting, or no readable photo."}})
    def rank_api(files: Annotated[list[UploadFile], File(description=(
                     "Photos (JPEG, PNG, WebP, ...) or zips of them; repeat the field"))],
                 community: Annotated[str, Form(description=(
                     "A community's full name or short id (GET /api/communities)"))],
                 followers: Annotated[float | None, Form(ge=0, description=(
                     "The posting account's followers: adds expected likes"))] = None,
                 alpha: Annotated[float | None, Form(ge=0, le=1, description=(
                     "0 = content fit only, 1 = predicted engagement only; none: the "
                     "bundle's choice on its held-out posts"))] = None
                 ) -> Response:
        """Rank the uploaded photos for `community`, as `python rank.py` would."""
        ranking = service.rank([(f.filename, f.file) for f in files], community, alpha,
                               followers)
        return Response(dumps_json(ranking.result), media_type="application/json",
                        headers={"Link": f'</results/{ranking.id}>; rel="alternate"; '
                                         'type="text/html"'})

    return app


@contextlib.contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn from a thread while the block runs; yields its base URL
    (``port=0``: a free port the system picks)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name="mmembed-app", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the app did not start on {host}:{port}")
        threading.Event().wait(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve(cfg) -> None:
    """``python rank.py serve=true [host=] [port=] [bundle=]``: load the bundle once and
    serve the app until Ctrl+C."""
    import uvicorn
    from omegaconf import OmegaConf

    from mmembed.cli.rank import resolve_bundle, settings_of
    from mmembed.cli.terminal import make_console

    console = make_console()
    path, why = resolve_bundle(cfg.get("bundle"), cfg.paths.index_dir)
    console.print(f"bundle [bold]{path}[/bold] ({why})", highlight=False)
    with console.status(f"loading bundle {path} and its model"):
        service = RankService.from_bundle(path, settings_of(cfg), OmegaConf.to_object(cfg.app),
                                          tower_cache_dir=Path(cfg.paths.cache_dir) / "features")
    host, port = str(cfg.get("host") or "127.0.0.1"), int(cfg.get("port") or 8000)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]listening on {host}: anyone who can reach this machine can "
                      "upload photos; host=127.0.0.1 keeps it to this machine[/yellow]")
    shown = f"[{host}]" if ":" in host else host
    console.print(f"serving [bold]http://{shown}:{port}/[/bold]  (API docs: /docs; Ctrl+C "
                  "stops it)", highlight=False)
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")
