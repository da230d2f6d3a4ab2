"""The refresh cookie and the rule that keeps cross-site requests from using it."""

from __future__ import annotations

from starlette.requests import Request

REFRESH_COOKIE = "refresh_token"


def cookie_allowed(request: Request, cors_origins: list[str]) -> bool:
    """A cookie counts only on a JSON POST from this origin or an allowed one.

    HTML forms cannot send application/json, and a cross-site fetch with that type needs a
    CORS preflight that only the configured origins pass; the Origin check covers the rest.
    """
    if request.method != "POST":
        return False
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin.rstrip("/") in (own, *cors_origins)
