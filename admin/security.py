"""The HTTP headers of the console and of GraphiQL: what the browser may load, and from where."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_security_policy(*extra: str) -> str:
    # Scripts and connections only from Keyturn itself: no inline script, no CDN, and no
    # framing (clickjacking on a page whose buttons end sessions).
    base = (
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "style-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
    overridden = {directive.split()[0] for directive in extra}
    return "; ".join(
        [*(d for d in base if d.split()[0] not in overridden), *extra],
    )


def security_headers(csp: str, cache_control: str = "no-store") -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": cache_control,
        "Cross-Origin-Opener-Policy": "same-origin",
    }


CONSOLE_HEADERS = security_headers(content_security_policy())

# GraphiQL's editor (Monaco) and React set inline styles and run workers from Keyturn's own
# files; scripts stay 'self' only. Its bundle changes only on install: revalidate, do not refetch.
GRAPHIQL_HEADERS = security_headers(
    content_security_policy(
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self' data:",
        "worker-src 'self'",
        "img-src 'self' data:",
    )
)
GRAPHIQL_ASSET_HEADERS = {**GRAPHIQL_HEADERS, "Cache-Control": "no-cache"}


class WithHeaders:
    """Adds fixed headers to every response of the wrapped ASGI app (e.g. StaticFiles)."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(self.headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
