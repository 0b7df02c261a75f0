"""OpenAPI docs that work offline: Swagger UI assets served by this server, no CDN."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

logger = logging.getLogger(__name__)
STATIC = "/docs/static"
# Used when the swagger-ui-bundle package is missing: renders the schema as plain HTML.
_FALLBACK = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>Interactive docs need the swagger-ui-bundle package; the schema is
at <a href="{openapi}">{openapi}</a>.</p><pre id="s"></pre><script>
fetch("{openapi}").then(r => r.json()).then(s => {{
  const lines = [];
  for (const [path, ops] of Object.entries(s.paths))
    for (const [method, op] of Object.entries(ops))
      lines.push(method.toUpperCase() + " " + path + (op.summary ? "  " + op.summary : ""));
  document.getElementById("s").textContent = lines.join("\\n");
}});</script></body></html>"""


def swagger_assets() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def install_docs(app: FastAPI) -> None:
    """Call on an app created with docs_url=None and redoc_url=None."""
    assets = swagger_assets()
    title = f"{app.title} - API docs"
    openapi = app.openapi_url or "/openapi.json"
    if assets is None:
        logger.info("swagger-ui-bundle not installed: /docs shows a plain page")

        @app.get("/docs", include_in_schema=False)
        async def plain_docs() -> Response:
            return HTMLResponse(_FALLBACK.format(title=title, openapi=openapi))
        return

    app.mount(STATIC, StaticFiles(directory=assets), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=openapi, title=title,
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon-32x32.png")
