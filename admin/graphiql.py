"""GraphiQL served from Keyturn: a page that loads the bundle built at install time."""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from admin.security import GRAPHIQL_HEADERS

logger = logging.getLogger("keyturn")

# Built by `make install` (npm ci, then `npm run build` in admin/); git ignores it.
ASSETS_DIR = Path(__file__).resolve().parent / "vendor" / "graphiql"
ASSETS_PATH = "/graphiql"
INSTALL_HINT = (
    "run `make install`, or `npm ci --ignore-scripts && npm run build` in the admin/ folder"
)

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Keyturn GraphiQL</title>
<link rel="icon" href="/admin/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{ASSETS_PATH}/graphiql.css">
<link rel="stylesheet" href="/admin/static/graphiql-page.css">
<script type="module" src="{ASSETS_PATH}/graphiql.js"></script>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
</body>
</html>
"""

MISSING = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Keyturn GraphiQL is not installed</title></head>
<body>
<h1>GraphiQL is not installed</h1>
<p>GraphiQL is enabled, but its files are missing on this server: {INSTALL_HINT}.
Then reload this page.</p>
<p>The GraphQL API itself works without them: <code>POST /graphql</code>.</p>
</body>
</html>
"""


def assets_installed() -> bool:
    return (ASSETS_DIR / "graphiql.js").is_file()


def warn_if_missing() -> None:
    if not assets_installed():
        logger.warning("GraphiQL is enabled but its assets are not installed: %s", INSTALL_HINT)


class AssetFiles(StaticFiles):
    """GraphiQL's bundle; while it is not installed, every asset is a 404, not a crash."""

    async def check_config(self) -> None:
        if assets_installed():
            await super().check_config()


def graphiql_page() -> HTMLResponse:
    if not assets_installed():
        return HTMLResponse(MISSING, status_code=503, headers=GRAPHIQL_HEADERS)
    return HTMLResponse(PAGE, headers=GRAPHIQL_HEADERS)
