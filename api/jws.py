"""Compact JWS with HS256 and one fixed protected header: the only kind of token Keyturn reads.

A general JWT library parses whatever header arrives, then decides which algorithm and key to
trust. Our tokens have exactly one possible header per kind, so the codec compares the header
segment, as text, with the one it writes, and never parses a presented header: `alg: none`,
another algorithm, `crit`, `jku` or a reordered header are all simply not that text (RFC 8725
§3.1). Output is byte-identical to PyJWT's `encode(claims, secret, "HS256", headers={"typ": typ,
"kid": kid})`, so tokens issued by either verify with the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

# RFC 7518 §3.2: an HS256 key at least as long as the hash; PyJWT's enforce_minimum_key_length.
MIN_SECRET_BYTES = 32
# Used with fullmatch: `$` would also match before a trailing newline.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
# json.dumps(claims, separators=...) builds this same encoder on every call (2 µs of ~20).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


class JWSInvalid(Exception):
    """Malformed, foreign or wrongly signed. The message names the check, never shown to clients."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class HS256Codec:
    def __init__(self, secret: bytes, *, typ: str, kid: str) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"an HS256 secret must be at least {MIN_SECRET_BYTES} bytes long")
        # Keyed once: each signature copies it, where hmac.digest(key, ...) looks the hash up
        # by name and derives the key's pads again for every token.
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)
        # Serialised as PyJWT does (sorted keys, no spaces), which makes the segment identical.
        header = {"alg": "HS256", "kid": kid, "typ": typ}
        self._header = _b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())

    def sign(self, claims: dict[str, Any]) -> str:
        # PyJWT keeps the claims in insertion order and escapes non-ASCII: so does this.
        payload = _b64url(_COMPACT_JSON.encode(claims).encode())
        signing_input = f"{self._header}.{payload}"
        return f"{signing_input}.{self._signature(signing_input)}"

    def verify(self, token: str) -> dict[str, Any]:
        header, _, rest = token.partition(".")
        if header != self._header:
            raise JWSInvalid("header")
        payload, _, signature = rest.partition(".")
        # A further dot, `=` padding or any non-ASCII character falls outside the alphabet.
        if not (_SEGMENT.fullmatch(payload) and _SEGMENT.fullmatch(signature)):
            raise JWSInvalid("segments")
        # The canonical text is compared, not the decoded bytes: a signature whose unused low bits
        # differ decodes to the same MAC, and refusing it leaves each token one valid spelling.
        if not hmac.compare_digest(self._signature(f"{header}.{payload}"), signature):
            raise JWSInvalid("signature")
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            # Decoded as UTF-8 first (RFC 7519 §7.2): json.loads on bytes also guesses UTF-16/32.
            claims = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise JWSInvalid("payload") from exc
        if not isinstance(claims, dict):
            raise JWSInvalid("payload")
        return claims

    def _signature(self, signing_input: str) -> str:
        mac = self._keyed.copy()
        mac.update(signing_input.encode("ascii"))
        return _b64url(mac.digest())
