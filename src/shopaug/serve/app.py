"""The HTTP service of an experiment run: search, recommendations, similar items, query
generation for new products, health, metrics and a small web page.

Run it with ``shopaug serve RUN_DIR``. The loaded artifacts live in one attribute
(``app.state.holder.state``) that a reload replaces only once the new state has loaded
completely, so a failed reload keeps serving the old model.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException

import shopaug
from shopaug.errors import ShopAugError
from shopaug.serve.metrics import Metrics
from shopaug.serve.state import MAX_K, ServingState, load_serving

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
MAX_QUERY = 200
VERSION_HEADER = "X-Shopaug-Version"


class Holder:
    """The current state; ``reload`` swaps it only after a complete load."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.state: ServingState = load_serving(run_dir)
        self._lock = threading.Lock()

    def reload(self) -> ServingState:
        with self._lock:  # two concurrent reloads would load twice for nothing
            new = load_serving(self.run_dir)
            self.state = new  # one attribute store: requests see the old or the new state
            return new


def _error(status: int, error: str, detail: Any = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


class ServeMiddleware:
    """Plain ASGI (cheaper than BaseHTTPMiddleware): body size limit, version header,
    metrics labelled by route template."""

    def __init__(self, app: Any, metrics: Metrics, routes: list, max_body: int = MAX_BODY
                 ) -> None:
        self.app, self.metrics, self.routes, self.max_body = app, metrics, routes, max_body

    def _label(self, scope: dict) -> str:
        route = scope.get("route")
        if route is None:  # refused before routing (413), or a route that doesn't record it
            from starlette.routing import Match

            route = next((r for r in self.routes if r.matches(scope)[0] is Match.FULL), None)
        return getattr(route, "path", None) or "unmatched"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(VERSION_HEADER, shopaug.__version__)
            await send(message)

        try:
            if scope["method"] in ("POST", "PUT", "PATCH"):
                body = await self._read_body(scope, receive)
                if body is None:
                    await _error(413, f"request body larger than {self.max_body} bytes")(
                        scope, receive, send_wrapper)
                    return
                receive = _replay(body)
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe(self._label(scope), scope["method"], status,
                                 time.perf_counter() - start)

    async def _read_body(self, scope: dict, receive: Any) -> bytes | None:
        """The whole body, or None when it exceeds the limit (checked before reading
        when Content-Length says so, and while reading chunked bodies)."""
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes) -> Any:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}
    return receive


class AugmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=300, description="product title")
    description: str | None = Field(None, max_length=4000)
    k: int = Field(3, ge=1, le=8, description="queries to generate")


def run_llm_config(run_dir: Path, overrides: dict[str, Any] | None = None) -> Any:
    """The run's own LLM settings (from its config.yaml) with ``overrides`` on top."""
    import yaml

    from shopaug.components import validate_config
    from shopaug.llm.config import LLMConfig

    values: dict[str, Any] = {}
    path = Path(run_dir) / "config.yaml"
    if path.is_file():
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        values = dict(loaded.get("llm") or {})
    values.update(overrides or {})
    return validate_config(LLMConfig, values, "llm options (--llm)")


def create_app(run_dir: str | Path, llm_config: Any = None) -> FastAPI:
    """The service for ``run_dir``; raises ArtifactError at once if it cannot be served."""
    from shopaug.serve.page import PAGE

    run_dir = Path(run_dir)
    holder = Holder(run_dir)
    metrics = Metrics()
    llm_lock = threading.Lock()
    llm_box: dict[str, Any] = {}
    app = FastAPI(title="shopaug", version=shopaug.__version__, docs_url=None, redoc_url=None,
                  description=f"Serving the best model of the experiment run `{run_dir.name}`")
    _offline_docs(app)
    app.state.holder = holder
    app.state.metrics = metrics
    app.add_middleware(ServeMiddleware, metrics=metrics, routes=app.router.routes)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict):
            return _error(exc.status_code, exc.detail["error"], exc.detail.get("detail"))
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"where": ".".join(str(p) for p in e.get("loc", ())), "message": e["msg"]}
                  for e in exc.errors()]
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return _error(400, "malformed JSON body", errors)
        return _error(422, "invalid request: " + "; ".join(
            f"{e['where']}: {e['message']}" for e in errors), errors)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s failed", request.url.path)
        return _error(500, "internal error", type(exc).__name__)

    def state() -> ServingState:
        return holder.state

    k_param = Query(10, ge=1, le=MAX_K, description="number of results")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/search", summary="Ranked catalog items for a query")
    async def search(q: str = Query(..., min_length=1, max_length=MAX_QUERY),
                     k: int = k_param) -> dict[str, Any]:
        if not q.strip():
            raise HTTPException(422, "q must contain a non-space character")
        current = state()
        if current.needs_candidates:
            # a neural reranker takes long enough to stall every other request on the loop
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(current.search, q.strip(), k)
        return current.search(q.strip(), k)

    @app.get("/recommend/{user_id}", summary="Recommendations for a user, with the reason")
    async def recommend(user_id: str = PathParam(..., max_length=MAX_QUERY),
                        k: int = k_param) -> dict[str, Any]:
        current = state()  # one state per request, even if a reload swaps it meanwhile
        if current.task != "rec":
            raise HTTPException(404, "this run is a search experiment: no recommender")
        return current.recommend(user_id, k)

    @app.get("/items/{item_id}/similar", summary="Items similar to an item")
    async def similar(item_id: str = PathParam(..., max_length=MAX_QUERY),
                      k: int = k_param) -> dict[str, Any]:
        current = state()
        if current.item(item_id) is None:
            raise HTTPException(404, {"error": f"unknown item {item_id!r}",
                                      "detail": "item ids are those of the run's catalog"})
        return {"item": current.item(item_id), **current.similar(item_id, k)}

    @app.get("/users", summary="A sample of known users (for the web page's picker)")
    async def users(limit: int = Query(20, ge=1, le=MAX_K)) -> dict[str, Any]:
        current = state()
        # the most active users first: their recommendations are the most telling
        top = current.active_users[:limit]
        return {"users": [{"user_id": u, "history_items": len(current.history[u]),
                           "has_profile": bool(current.profiles.get(u))} for u in top]}

    @app.post("/augment/queries", summary="Search queries an LLM writes for a new product")
    def augment(body: AugmentRequest) -> dict[str, Any]:
        if not body.title.strip():
            raise HTTPException(422, "title must contain a non-space character")
        try:
            with llm_lock:  # one engine, not thread-safe; requests queue here
                if "llm" not in llm_box:
                    from shopaug.llm.config import build_llm

                    llm_box["llm"] = build_llm(llm_config or run_llm_config(run_dir))
                queries = _generate(llm_box["llm"], body)
        except ShopAugError as exc:
            raise HTTPException(503, {"error": "the LLM is unavailable",
                                      "detail": str(exc)}) from exc
        return {"title": body.title, "queries": queries,
                "llm_model": llm_box["llm"].engine.model_id}

    @app.get("/health", summary="Liveness and what is being served")
    async def health() -> dict[str, Any]:
        current = state()
        return {"status": "ok", "version": shopaug.__version__, "task": current.task,
                "best": current.best, "run": run_dir.name,
                "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                           time.localtime(current.loaded_at)),
                "items": len(current.items), "users": len(current.history)}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/report", response_class=HTMLResponse, summary="The run's HTML report")
    async def report() -> Any:
        path = run_dir / "report.html"
        if not path.is_file():
            raise HTTPException(404, {"error": "this run has no report.html",
                                      "detail": f"write one with `shopaug report {run_dir}`"})
        return FileResponse(path, media_type="text/html")

    @app.post("/admin/reload", summary="Reload the artifacts; the old ones serve on failure")
    def reload() -> Any:
        try:
            new = holder.reload()
        except ShopAugError as exc:
            log.error("reload failed, still serving the previous state: %s", exc)
            return _error(500, "reload failed; still serving the previously loaded model",
                          str(exc))
        return {"status": "reloaded", "best": new.best}

    return app


def _generate(llm: Any, body: AugmentRequest) -> list[str]:
    """Run the SyntheticQueries augmenter on a one-item bundle (no few-shot examples:
    a new product has no judged queries)."""
    import pandas as pd

    from shopaug.augment.queries import SyntheticQueries
    from shopaug.data.bundle import ShopData
    from shopaug.pipeline.runner import RunContext

    item = {"item_id": "new", "title": body.title.strip(), "description": body.description}
    data = ShopData(items=pd.DataFrame([item]))
    ctx = RunContext(seed=0, run_dir=None, progress=False, _llm=llm)  # type: ignore[arg-type]
    out = SyntheticQueries(k=body.k, n_examples=0).run(data, ctx)
    return out.queries["text"].astype(str).tolist()



def _offline_docs(app) -> None:
    """/docs from the Swagger UI files shipped in the swagger-ui-bundle package: FastAPI's
    default page loads them from a CDN, which is blank on an offline machine."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # the API still works; /openapi.json still describes it
        return
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="shopaug API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")
