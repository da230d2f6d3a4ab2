"""The JWT attack table: every forged, malformed or misdirected token is refused, never a 5xx.

Each forgery starts from a genuine token issued by `login` and changes one thing, so a case that
slips through points at exactly one missing check. Tokens are assembled by hand (base64url JSON
and HMAC) because PyJWT refuses to build most of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from models import Session as SessionRow
from models import User as UserRow
from tests.conftest import ACCESS_SECRET, REFRESH_SECRET, AppFactory, GraphQLResult, Harness

ME = "{ me { id } }"
REFRESH = """
mutation ($t: String!) {
  refresh(refreshToken: $t, refreshTokenDelivery: BODY) { accessToken refreshToken }
}
"""
LOGOUT = "mutation ($t: String!) { logout(refreshToken: $t) }"

DROP = object()  # a header field or claim to remove instead of replace


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def hmac_signature(signing_input: str, secret: str, digest: Callable[..., Any]) -> str:
    return b64url(hmac.new(secret.encode(), signing_input.encode(), digest).digest())


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class Genuine:
    """A real pair from `login`, taken apart so that one piece at a time can be changed."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    refresh_token: str
    refresh_header: dict[str, Any]
    refresh_claims: dict[str, Any]

    @classmethod
    def of(cls, payload: dict[str, Any]) -> Genuine:
        access, refresh = payload["accessToken"], payload["refreshToken"]
        return cls(access, *_parts(access), refresh, *_parts(refresh))


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, claims, _ = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(claims))


def _changed(base: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    result = dict(base)
    for key, value in (changes or {}).items():
        if value is DROP:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def forge(
    genuine: Genuine,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    secret: str = ACCESS_SECRET,
    digest: Callable[..., Any] = hashlib.sha256,
    refresh: bool = False,
) -> str:
    """The genuine access (or refresh) token with the changes applied, HMAC-signed again."""
    base_header = genuine.refresh_header if refresh else genuine.header
    base_claims = genuine.refresh_claims if refresh else genuine.claims
    signing_input = (
        f"{b64url_json(_changed(base_header, header))}.{b64url_json(_changed(base_claims, claims))}"
    )
    return f"{signing_input}.{hmac_signature(signing_input, secret, digest)}"


def unsigned(genuine: Genuine, alg: str, signature: str = "") -> str:
    return (
        f"{b64url_json({**genuine.header, 'alg': alg})}.{genuine.token.split('.')[1]}.{signature}"
    )


def alg_none(alg: str, signed: bool) -> Callable[[Genuine], str]:
    def build(genuine: Genuine) -> str:
        if not signed:
            return unsigned(genuine, alg)
        return forge(genuine, header={"alg": alg})

    return build


def rs256_with_rsa_key(genuine: Genuine) -> str:
    signing_input = ".".join(forge(genuine, header={"alg": "RS256"}).split(".")[:2])
    signature = rsa_key().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def flipped_signature(token: str, index: int) -> str:
    head, body, signature = token.split(".")
    raw = bytearray(unb64url(signature))
    raw[index] ^= 0xFF
    return f"{head}.{body}.{b64url(bytes(raw))}"


def resign_segments(header: str, claims: str) -> str:
    signing_input = f"{header}.{claims}"
    return f"{signing_input}.{hmac_signature(signing_input, ACCESS_SECRET, hashlib.sha256)}"


def garbage(seed: int, size: int) -> str:
    return b64url(random.Random(seed).randbytes(size))


ForgeryBuilder = Callable[[Genuine], str]

FORGERIES: dict[str, ForgeryBuilder] = {
    # alg "none" in any spelling, with no signature and with an HMAC one.
    **{
        f"alg-{alg}-{'signed' if signed else 'unsigned'}": alg_none(alg, signed)
        for alg in ("none", "None", "NONE", "nOnE")
        for signed in (False, True)
    },
    "alg-none-with-the-genuine-signature": lambda g: unsigned(g, "none", g.token.split(".")[2]),
    "alg-missing": lambda g: forge(g, header={"alg": DROP}),
    # Other algorithms, even with the right secret.
    "HS384-right-secret": lambda g: forge(g, header={"alg": "HS384"}, digest=hashlib.sha384),
    "HS512-right-secret": lambda g: forge(g, header={"alg": "HS512"}, digest=hashlib.sha512),
    "RS256-rsa-signature": rs256_with_rsa_key,
    "RS256-header-hmac-with-access-secret": lambda g: forge(g, header={"alg": "RS256"}),
    # The signature itself.
    "signature-first-byte-flipped": lambda g: flipped_signature(g.token, 0),
    "signature-last-byte-flipped": lambda g: flipped_signature(g.token, -1),
    "signature-stripped": lambda g: g.token.rsplit(".", 1)[0] + ".",
    "signature-wrong-secret": lambda g: forge(g, secret="another-secret-0123456789-abcdefghijkl"),
    # Every required claim, absent or null.
    **{
        f"missing-{claim}": (lambda c: lambda g: forge(g, claims={c: DROP}))(claim)
        for claim in ("iss", "aud", "sub", "sid", "ver", "role", "iat", "exp", "jti")
    },
    "null-sid": lambda g: forge(g, claims={"sid": None}),
    "null-exp": lambda g: forge(g, claims={"exp": None}),
    # Issuer and audience.
    "wrong-iss": lambda g: forge(g, claims={"iss": "evil"}),
    "iss-substring": lambda g: forge(g, claims={"iss": "keytur"}),
    "iss-as-list": lambda g: forge(g, claims={"iss": ["keyturn"]}),
    "wrong-aud": lambda g: forge(g, claims={"aud": "evil"}),
    "aud-as-list": lambda g: forge(g, claims={"aud": ["keyturn"]}),
    "aud-superstring": lambda g: forge(g, claims={"aud": "keyturn-admin"}),
    # The header's typ and kid.
    "typ-missing": lambda g: forge(g, header={"typ": DROP}),
    "typ-JWT": lambda g: forge(g, header={"typ": "JWT"}),
    "typ-rt+jwt": lambda g: forge(g, header={"typ": "rt+jwt"}),
    "kid-missing": lambda g: forge(g, header={"kid": DROP}),
    "kid-wrong": lambda g: forge(g, header={"kid": "at-000000000000"}),
    "kid-of-the-refresh-key": lambda g: forge(g, header={"kid": g.refresh_header["kid"]}),
    # One kind of token where the other is expected.
    "refresh-token-as-access-token": lambda g: g.refresh_token,
    "refresh-secret-with-access-header": lambda g: forge(g, secret=REFRESH_SECRET),
    "refresh-secret-and-refresh-kid-with-typ-at+jwt": lambda g: forge(
        g, header={"kid": g.refresh_header["kid"]}, secret=REFRESH_SECRET
    ),
    # Size.
    "16KB-validly-signed": lambda g: forge(g, claims={"pad": "x" * 16 * 1024}),
    "16KB-of-letters": lambda g: "a" * 16 * 1024,
    # Garbage.
    "a.b.c": lambda g: "a.b.c",
    "random-bytes-base64": lambda g: garbage(1, 300),
    "random-bytes-base64-in-three-parts": lambda g: ".".join(garbage(n, 60) for n in (2, 3, 4)),
    "two-segments": lambda g: g.token.rsplit(".", 1)[0],
    "four-segments": lambda g: g.token + ".AAAA",
    "header-not-an-object": lambda g: resign_segments(b64url_json([]), g.token.split(".")[1]),
    "claims-not-an-object": lambda g: resign_segments(g.token.split(".")[0], b64url_json([1])),
    "claims-not-json": lambda g: resign_segments(g.token.split(".")[0], b64url(b"{not json")),
    "deeply-nested-header": lambda g: f"{b64url(b'[' * 2900)}.e30.AAAA",
    # Claims of the wrong type, validly signed.
    "ver-as-string": lambda g: forge(g, claims={"ver": str(g.claims["ver"])}),
    "ver-as-bool": lambda g: forge(g, claims={"ver": False}),
    "ver-as-float": lambda g: forge(g, claims={"ver": float(g.claims["ver"])}),
    "sub-not-a-uuid": lambda g: forge(g, claims={"sub": "not-a-uuid"}),
    "sub-as-number": lambda g: forge(g, claims={"sub": 12345}),
    "sid-not-a-uuid": lambda g: forge(g, claims={"sid": "' OR 1=1 --"}),
    "role-as-number": lambda g: forge(g, claims={"role": 1}),
    "exp-as-string": lambda g: forge(g, claims={"exp": str(g.claims["exp"])}),
    "exp-as-float": lambda g: forge(g, claims={"exp": g.claims["exp"] + 0.5}),
    "iat-as-string": lambda g: forge(g, claims={"iat": str(g.claims["iat"])}),
    # Impossible times.
    "iat-after-exp": lambda g: forge(g, claims={"iat": g.claims["exp"] + 1}),
    "iat-equal-to-exp": lambda g: forge(g, claims={"iat": g.claims["exp"]}),
    "exp-beyond-any-date": lambda g: forge(g, claims={"exp": 10**20}),
    "exp-beyond-64-bits": lambda g: forge(g, claims={"exp": 2**64}),
    "iat-before-any-date": lambda g: forge(g, claims={"iat": -(10**13)}),
    # An expired forgery must not learn that it expired: the signature is judged first.
    "expired-and-wrongly-signed": lambda g: forge(
        g,
        claims={"iat": g.claims["iat"] - 2000, "exp": g.claims["iat"] - 1100},
        secret="another-secret-0123456789-abcdefghijkl",
    ),
}

# Sent as raw header bytes: httpx will not encode a str header value that is not ASCII.
NON_ASCII: dict[str, bytes] = {
    "non-ascii-token": "Bearer tøkén.ü.ß".encode(),
    "non-ascii-inside-a-genuine-looking-token": "Bearer eyJ.é.x".encode(),
    "latin-1-bytes": b"Bearer \xff\xfe.\xfd.\xfc",
}

SCHEMES: dict[str, Callable[[Genuine], str]] = {
    "basic-credentials": lambda g: "Basic dXNlckBleGFtcGxlLmNvbTpodW50ZXIy",
    "basic-with-the-genuine-token": lambda g: f"Basic {g.token}",
    "token-scheme": lambda g: f"Token {g.token}",
    "bare-token": lambda g: g.token,
    "bearer-without-token": lambda g: "Bearer ",
    "bearer-alone": lambda g: "Bearer",
    "empty-header": lambda g: "",
}


async def ask_me(api: Harness, authorization: str | bytes | None) -> GraphQLResult:
    headers: dict[str, str | bytes] = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await api.client.post("/graphql", json={"query": ME}, headers=headers)
    assert response.status_code < 500, response.text
    result = GraphQLResult(response.json())
    result.response = response
    return result


async def genuine_pair(api: Harness) -> Genuine:
    return Genuine.of(await api.login(delivery="BODY"))


def assert_unauthenticated(result: GraphQLResult) -> None:
    assert result.codes == ["UNAUTHENTICATED"], result.errors
    assert result.data is None
    assert result.response.status_code < 500


async def test_the_genuine_token_is_accepted(api: Harness, user: UserRow) -> None:
    # The control case: every forgery below differs from this token in one thing only.
    genuine = await genuine_pair(api)
    result = await ask_me(api, f"Bearer {forge(genuine)}")
    assert result.data == {"me": {"id": str(user.id)}}


@pytest.mark.parametrize("case", list(FORGERIES))
async def test_forged_or_malformed_bearer_token_is_unauthenticated(
    api: Harness, user: UserRow, case: str
) -> None:
    genuine = await genuine_pair(api)
    token = FORGERIES[case](genuine)
    assert token != genuine.token
    assert_unauthenticated(await ask_me(api, f"Bearer {token}"))


@pytest.mark.parametrize("case", list(NON_ASCII))
async def test_non_ascii_authorization_is_unauthenticated(
    api: Harness, user: UserRow, case: str
) -> None:
    assert_unauthenticated(await ask_me(api, NON_ASCII[case]))


@pytest.mark.parametrize("case", list(SCHEMES))
async def test_missing_or_other_authorization_scheme_is_unauthenticated(
    api: Harness, user: UserRow, case: str
) -> None:
    genuine = await genuine_pair(api)
    assert_unauthenticated(await ask_me(api, SCHEMES[case](genuine)))


async def test_no_authorization_header_is_unauthenticated(api: Harness, user: UserRow) -> None:
    assert_unauthenticated(await ask_me(api, None))


async def test_every_refusal_carries_one_identical_message(api: Harness, user: UserRow) -> None:
    genuine = await genuine_pair(api)
    results = [await ask_me(api, None)]
    results += [await ask_me(api, f"Bearer {build(genuine)}") for build in FORGERIES.values()]
    results += [await ask_me(api, value) for value in NON_ASCII.values()]
    results += [await ask_me(api, build(genuine)) for build in SCHEMES.values()]
    for result in results:
        assert_unauthenticated(result)
    messages = {result.errors[0]["message"] for result in results}
    assert len(messages) == 1, messages
    # Nothing in the message hints at which check failed.
    assert not any(word in next(iter(messages)).lower() for word in ("alg", "kid", "claim"))


# 64 bytes: long enough for HS512, so PyJWT's minimum key length cannot be what refuses these.
LONG_ACCESS_SECRET = "long-access-secret-" + "0123456789abcdef" * 3 + "-ok"


@pytest.mark.parametrize(("alg", "digest"), [("HS384", hashlib.sha384), ("HS512", hashlib.sha512)])
async def test_hs384_and_hs512_are_refused_even_with_a_key_long_enough_for_them(
    app_factory: AppFactory, alg: str, digest: Callable[..., Any]
) -> None:
    api = await app_factory(access_token_secret=LONG_ACCESS_SECRET)
    await api.create_user()
    genuine = await genuine_pair(api)
    control = forge(genuine, secret=LONG_ACCESS_SECRET)
    assert (await ask_me(api, f"Bearer {control}")).data is not None

    token = forge(genuine, header={"alg": alg}, secret=LONG_ACCESS_SECRET, digest=digest)
    assert_unauthenticated(await ask_me(api, f"Bearer {token}"))


async def test_an_expired_genuine_token_is_token_expired(api: Harness, user: UserRow) -> None:
    genuine = await genuine_pair(api)
    api.clock.advance(899)
    assert (await ask_me(api, f"Bearer {genuine.token}")).data == {"me": {"id": str(user.id)}}
    api.clock.advance(2)
    result = await ask_me(api, f"Bearer {genuine.token}")
    assert result.codes == ["TOKEN_EXPIRED"]
    assert result.data is None
    # Telling "expired" apart from "forged" is the point: the client should refresh, not log in.
    forged = await ask_me(api, f"Bearer {FORGERIES['signature-first-byte-flipped'](genuine)}")
    assert result.errors[0]["message"] != forged.errors[0]["message"]


REFRESH_FORGERIES: dict[str, ForgeryBuilder] = {
    "access-token-as-refresh-token": lambda g: g.token,
    "refresh-claims-signed-with-the-access-secret": lambda g: forge(
        g, refresh=True, secret=ACCESS_SECRET
    ),
    "refresh-token-with-typ-at+jwt": lambda g: forge(
        g, refresh=True, header={"typ": "at+jwt"}, secret=REFRESH_SECRET
    ),
    "refresh-token-with-the-access-kid": lambda g: forge(
        g, refresh=True, header={"kid": g.header["kid"]}, secret=REFRESH_SECRET
    ),
    "refresh-token-alg-none": lambda g: (
        f"{b64url_json({**g.refresh_header, 'alg': 'none'})}.{g.refresh_token.split('.')[1]}."
    ),
    "refresh-token-without-jti": lambda g: forge(
        g, refresh=True, claims={"jti": DROP}, secret=REFRESH_SECRET
    ),
    "refresh-token-flipped-signature": lambda g: flipped_signature(g.refresh_token, 0),
    "16KB-refresh-token": lambda g: forge(
        g, refresh=True, claims={"pad": "x" * 16 * 1024}, secret=REFRESH_SECRET
    ),
    "garbage": lambda g: "a.b.c",
}


@pytest.mark.parametrize("case", list(REFRESH_FORGERIES))
async def test_forged_refresh_token_is_refused_and_ends_nothing(
    api: Harness, user: UserRow, case: str
) -> None:
    genuine = await genuine_pair(api)
    token = REFRESH_FORGERIES[case](genuine)
    assert token != genuine.refresh_token

    refreshed = await api.gql(REFRESH, {"t": token})
    assert refreshed.codes == ["INVALID_REFRESH_TOKEN"]
    assert refreshed.data is None
    logged_out = await api.gql(LOGOUT, {"t": token})
    assert logged_out.codes == ["INVALID_REFRESH_TOKEN"]

    session = await SessionRow.get(id=genuine.claims["sid"])
    assert session.revoked_at is None
    assert str(session.current_token_id) == genuine.refresh_claims["jti"]
    # The genuine token still works: the forgery neither rotated nor revoked anything.
    result = await api.gql(REFRESH, {"t": genuine.refresh_token})
    assert not result.errors, result.errors
