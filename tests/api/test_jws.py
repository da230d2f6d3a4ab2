"""The HS256 codec: byte-identical to PyJWT, and it refuses everything but its own exact tokens.

PyJWT is the independent reference here: tokens must verify both ways across the switch. The
refusals name the check that fired (`match=`), so a case refused for the wrong reason fails.
Hostile tokens are assembled by hand (base64url and hmac), as PyJWT refuses to build most of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from api.jws import MIN_SECRET_BYTES, HS256Codec, JWSInvalid
from api.tokens import (
    ACCESS_CLAIMS,
    ACCESS_TYP,
    MAX_TOKEN_LENGTH,
    REFRESH_CLAIMS,
    REFRESH_TYP,
    TokenInvalid,
    TokenService,
)
from tests.conftest import ACCESS_SECRET, REFRESH_SECRET

ACCESS_KEY = ACCESS_SECRET.encode()
REFRESH_KEY = REFRESH_SECRET.encode()
ISSUER = AUDIENCE = "keyturn"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
DROP = object()  # a claim to remove instead of replace


def kid(prefix: str, secret: bytes) -> str:
    # As docs/tokens.md defines it, computed independently of api/tokens.py.
    return f"{prefix}-{hashlib.sha256(secret).hexdigest()[:12]}"


ACCESS = {"kid": kid("at", ACCESS_KEY), "typ": ACCESS_TYP}
REFRESH = {"kid": kid("rt", REFRESH_KEY), "typ": REFRESH_TYP}
KINDS = {"access": (ACCESS_KEY, ACCESS), "refresh": (REFRESH_KEY, REFRESH)}

CLAIM_SETS: dict[str, dict[str, Any]] = {
    "access-claims": {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "0b7c8f5e-7f2a-4a57-9a51-4b7e3c1d2e3f",
        "sid": "5d1f3c2a-8b4e-4c6d-9e7f-1a2b3c4d5e6f",
        "ver": 3,
        "role": "admin",
        "iat": 1893456000,
        "exp": 1893456900,
        "jti": "9f86d081884c7d659a2feaa0c55ad015",
    },
    "non-ascii": {"name": "Zoë Łukasz 東京 ☃ 𝄞", "emoji": "🔑", "rtl": "שלום"},
    "escapes": {"html": "</script><b>&amp;", "quote": '"\\\n\t\x00', "slash": "a/b"},
    "numbers": {"zero": 0, "negative": -42, "big": 2**70, "float": 1.5, "bools": [True, False]},
    "nested": {"a": {"b": [1, {"c": None, "d": []}], "e": {}}, "z": "last", "m": "middle"},
    "empty": {},
}


def codec(kind: str) -> HS256Codec:
    secret, header = KINDS[kind]
    return HS256Codec(secret, **header)


def pyjwt_sign(claims: dict[str, Any], kind: str, algorithm: str = "HS256") -> str:
    secret, header = KINDS[kind]
    return jwt.PyJWT().encode(claims, secret, algorithm=algorithm, headers=header)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def hand_signed(
    header: str,
    payload: str,
    secret: bytes = ACCESS_KEY,
    digest: Callable[..., Any] = hashlib.sha256,
) -> str:
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{b64url(hmac.new(secret, signing_input.encode(), digest).digest())}"


def header_segment(header: dict[str, Any]) -> str:
    # Deliberately not sorted: each case below spells its header exactly as it means to.
    return b64url(json.dumps(header, separators=(",", ":")).encode())


def genuine() -> str:
    return codec("access").sign(CLAIM_SETS["access-claims"])


# --- Byte-identical to PyJWT, both ways --------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("claims", list(CLAIM_SETS))
def test_signed_tokens_are_byte_identical_to_pyjwt(kind: str, claims: str) -> None:
    assert codec(kind).sign(CLAIM_SETS[claims]) == pyjwt_sign(CLAIM_SETS[claims], kind)


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_header_is_exactly_alg_kid_and_typ(kind: str) -> None:
    token = codec(kind).sign({})
    assert (
        unb64url(token.split(".")[0])
        == json.dumps(
            {"alg": "HS256", **KINDS[kind][1]}, separators=(",", ":"), sort_keys=True
        ).encode()
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_pyjwt_accepts_our_tokens(kind: str) -> None:
    claims = CLAIM_SETS["access-claims"]
    secret, header = KINDS[kind]
    token = codec(kind).sign(claims)

    assert jwt.get_unverified_header(token) == {"alg": "HS256", **header}
    decoded = jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert decoded == claims


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("claims", list(CLAIM_SETS))
def test_we_accept_pyjwt_tokens(kind: str, claims: str) -> None:
    assert codec(kind).verify(pyjwt_sign(CLAIM_SETS[claims], kind)) == CLAIM_SETS[claims]


# --- Refusals ----------------------------------------------------------------------------------


def replace_char(text: str, index: int) -> str:
    """`text` with one base64url character changed to another base64url character."""
    return text[:index] + ("B" if text[index] == "A" else "A") + text[index + 1 :]


def test_the_control_token_verifies() -> None:
    # Every refusal below changes one thing in this token.
    assert codec("access").verify(genuine()) == CLAIM_SETS["access-claims"]


def test_a_token_signed_with_another_key_is_refused() -> None:
    other = HS256Codec(REFRESH_KEY, **ACCESS)
    with pytest.raises(JWSInvalid, match=r"^signature$"):
        codec("access").verify(other.sign(CLAIM_SETS["access-claims"]))


@pytest.mark.parametrize("index", [0, 10, -1])
def test_a_tampered_payload_is_refused(index: int) -> None:
    header, payload, signature = genuine().split(".")
    tampered = f"{header}.{replace_char(payload, index)}.{signature}"
    with pytest.raises(JWSInvalid, match=r"^signature$"):
        codec("access").verify(tampered)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda s: replace_char(s, 0), id="first-char-changed"),
        pytest.param(lambda s: replace_char(s, 20), id="middle-char-changed"),
        pytest.param(lambda s: s[:-1], id="truncated-by-one"),
        pytest.param(lambda s: s[:22], id="truncated-by-half"),
        pytest.param(lambda s: s + "A", id="one-char-longer"),
        pytest.param(lambda s: b64url(unb64url(s)[:-1]), id="one-byte-shorter"),
    ],
)
def test_a_tampered_or_truncated_signature_is_refused(damage: Callable[[str], str]) -> None:
    header, payload, signature = genuine().split(".")
    with pytest.raises(JWSInvalid, match=r"^signature$"):
        codec("access").verify(f"{header}.{payload}.{damage(signature)}")


@pytest.mark.parametrize("padding", ["=", "==", "%3D"])
def test_a_padded_signature_is_refused(padding: str) -> None:
    with pytest.raises(JWSInvalid, match=r"^segments$"):
        codec("access").verify(genuine() + padding)


def test_a_non_canonical_signature_for_the_same_mac_is_refused() -> None:
    token = genuine()
    head, signature = token.rsplit(".", 1)
    # 43 characters carry 258 bits for a 256-bit MAC: the last one's two low bits are unused.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    assert last & 0b11 == 0
    twin = signature[:-1] + alphabet[last | 0b01]
    assert twin != signature
    assert unb64url(twin) == unb64url(signature)  # same MAC bytes, another spelling
    with pytest.raises(JWSInvalid, match=r"^signature$"):
        codec("access").verify(f"{head}.{twin}")


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"alg": "none", **ACCESS}, id="alg-none"),
        pytest.param({"alg": "None", **ACCESS}, id="alg-None"),
        pytest.param({"alg": "HS384", **ACCESS}, id="alg-HS384"),
        pytest.param({"alg": "HS512", **ACCESS}, id="alg-HS512"),
        pytest.param({"kid": ACCESS["kid"], "typ": ACCESS_TYP}, id="alg-missing"),
        pytest.param({"alg": "HS256", "kid": ACCESS["kid"]}, id="typ-missing"),
        pytest.param({"alg": "HS256", "typ": ACCESS_TYP}, id="kid-missing"),
        pytest.param({"alg": "HS256", **ACCESS, "typ": "JWT"}, id="typ-JWT"),
        pytest.param({"alg": "HS256", **ACCESS, "typ": REFRESH_TYP}, id="refresh-typ"),
        pytest.param({"alg": "HS256", **ACCESS, "kid": REFRESH["kid"]}, id="refresh-kid"),
        pytest.param({"alg": "HS256", **ACCESS, "crit": ["exp"]}, id="extra-crit"),
        pytest.param({"alg": "HS256", **ACCESS, "jku": "https://evil.test/k"}, id="extra-jku"),
        pytest.param({"alg": "HS256", **ACCESS, "b64": False}, id="extra-b64"),
        pytest.param({"typ": ACCESS_TYP, "alg": "HS256", "kid": ACCESS["kid"]}, id="reordered"),
    ],
)
def test_any_other_header_is_refused_even_when_signed_with_the_right_key(
    header: dict[str, Any],
) -> None:
    digest = {"HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(header.get("alg", ""))
    payload = genuine().split(".")[1]
    token = hand_signed(header_segment(header), payload, digest=digest or hashlib.sha256)
    with pytest.raises(JWSInvalid, match=r"^header$"):
        codec("access").verify(token)


def test_our_own_header_spelled_by_hand_is_the_control_for_the_header_cases() -> None:
    header = {"alg": "HS256", **ACCESS}
    token = hand_signed(header_segment(header), genuine().split(".")[1])
    assert token == genuine()


@pytest.mark.parametrize("spacing", [(", ", ": "), (",", ": ")])
def test_a_header_with_whitespace_is_refused(spacing: tuple[str, str]) -> None:
    header = b64url(json.dumps({"alg": "HS256", **ACCESS}, separators=spacing).encode())
    token = hand_signed(header, genuine().split(".")[1])
    with pytest.raises(JWSInvalid, match=r"^header$"):
        codec("access").verify(token)


@pytest.mark.parametrize("signature", ["", "AAAA"])
def test_an_alg_none_token_is_refused(signature: str) -> None:
    header = header_segment({"alg": "none", **ACCESS})
    with pytest.raises(JWSInvalid, match=r"^header$"):
        codec("access").verify(f"{header}.{genuine().split('.')[1]}.{signature}")


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_a_pyjwt_token_with_another_hmac_algorithm_is_refused(algorithm: str) -> None:
    # 64 bytes, long enough for HS512, so no key length rule is what refuses it.
    secret = ACCESS_KEY.ljust(64, b"!")
    header = {"typ": ACCESS_TYP, "kid": kid("at", secret)}
    token = jwt.PyJWT().encode({"sub": "x"}, secret, algorithm=algorithm, headers=header)
    with pytest.raises(JWSInvalid, match=r"^header$"):
        HS256Codec(secret, **header).verify(token)


def test_the_access_key_under_the_refresh_header_is_refused() -> None:
    token = HS256Codec(ACCESS_KEY, **REFRESH).sign(CLAIM_SETS["access-claims"])
    with pytest.raises(JWSInvalid, match=r"^header$"):
        codec("access").verify(token)
    with pytest.raises(JWSInvalid, match=r"^signature$"):
        codec("refresh").verify(token)


@pytest.mark.parametrize(("issuer", "verifier"), [("access", "refresh"), ("refresh", "access")])
def test_one_kind_never_passes_as_the_other(issuer: str, verifier: str) -> None:
    token = codec(issuer).sign(CLAIM_SETS["access-claims"])
    assert codec(issuer).verify(token) == CLAIM_SETS["access-claims"]
    with pytest.raises(JWSInvalid, match=r"^header$"):
        codec(verifier).verify(token)


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(lambda t: "", "header", id="empty"),
        pytest.param(lambda t: t.split(".")[0], "segments", id="header-only"),
        pytest.param(lambda t: t.split(".")[0] + ".", "segments", id="header-and-dot"),
        pytest.param(lambda t: t.rsplit(".", 1)[0], "segments", id="two-segments"),
        pytest.param(lambda t: t.rsplit(".", 1)[0] + ".", "segments", id="empty-signature"),
        pytest.param(lambda t: t + ".AAAA", "segments", id="four-segments"),
        pytest.param(lambda t: t + ".", "segments", id="trailing-dot"),
        pytest.param(lambda t: t.replace(".", "..", 1), "segments", id="empty-payload"),
        pytest.param(lambda t: t + "\n", "segments", id="trailing-newline"),
        pytest.param(lambda t: " " + t, "header", id="leading-space"),
        pytest.param(lambda t: t.replace(".", ".+", 1), "segments", id="standard-base64-char"),
        pytest.param(lambda t: "a.b.c", "header", id="a.b.c"),
    ],
)
def test_malformed_tokens_are_refused(build: Callable[[str], str], reason: str) -> None:
    with pytest.raises(JWSInvalid, match=f"^{reason}$"):
        codec("access").verify(build(genuine()))


@pytest.mark.parametrize("segment", [0, 1, 2])
@pytest.mark.parametrize("character", ["é", "\u0663", "\uff5a", "\udcff", "\x00"])
def test_non_ascii_or_control_characters_are_refused_cleanly(segment: int, character: str) -> None:
    # An Arabic-Indic 3 and a fullwidth z match `\w` and str.isalnum(): the alphabet must be ASCII.
    parts = genuine().split(".")
    parts[segment] = parts[segment][:5] + character + parts[segment][6:]
    with pytest.raises(JWSInvalid, match=r"^(header|segments)$"):
        codec("access").verify(".".join(parts))


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b64url(b"[1,2,3]"), id="json-array"),
        pytest.param(b64url(b'"a string"'), id="json-string"),
        pytest.param(b64url(b"null"), id="json-null"),
        pytest.param(b64url(b"{not json"), id="invalid-json"),
        pytest.param(b64url(b'{"a":1}garbage'), id="trailing-garbage"),
        pytest.param(b64url(b'{"sub":"\xff\xfe"}'), id="invalid-utf8"),
        pytest.param(b64url('{"sub":"x"}'.encode("utf-16")), id="utf16-with-bom"),
        pytest.param(b64url(b"\xef\xbb\xbf{}"), id="utf8-bom"),
        pytest.param(b64url(b"[" * 100_000), id="deeply-nested"),
        pytest.param(b64url(b'{"n":' + b"9" * 5000 + b"}"), id="int-too-long-to-parse"),
        pytest.param("e30xx", id="base64-length-one-more-than-multiple-of-4"),
    ],
)
def test_a_correctly_signed_payload_that_is_not_a_json_object_is_refused(payload: str) -> None:
    token = hand_signed(genuine().split(".")[0], payload)
    with pytest.raises(JWSInvalid, match=r"^payload$"):
        codec("access").verify(token)


def test_a_correctly_signed_empty_object_is_the_control_for_the_payload_cases() -> None:
    assert codec("access").verify(hand_signed(genuine().split(".")[0], b64url(b"{}"))) == {}


def test_a_secret_shorter_than_32_bytes_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        HS256Codec(b"x" * (MIN_SECRET_BYTES - 1), **ACCESS)
    HS256Codec(b"x" * MIN_SECRET_BYTES, **ACCESS)


# --- Through TokenService: the claim checks PyJWT used to make ----------------------------------


def service(**changes: Any) -> TokenService:
    options: dict[str, Any] = {
        "access_secret": ACCESS_KEY,
        "refresh_secret": REFRESH_KEY,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "access_ttl": 900,
        "refresh_ttl": 604800,
    }
    return TokenService(**{**options, **changes})


def issued_claims(kind: str) -> dict[str, Any]:
    """The claims TokenService itself writes, read back from a token it issued."""
    tokens, ids = service(), {"user_id": uuid.uuid4(), "session_id": uuid.uuid4()}
    if kind == "access":
        token, _ = tokens.issue_access(**ids, token_version=1, role="user", now=NOW)
    else:
        token, _ = tokens.issue_refresh(
            **ids, token_id=uuid.uuid4(), token_version=1, issued_at=NOW
        )
    claims: dict[str, Any] = json.loads(unb64url(token.split(".")[1]))
    return claims


def verify(kind: str, token: str) -> object:
    tokens = service()
    return (
        tokens.verify_access(token, NOW) if kind == "access" else tokens.verify_refresh(token, NOW)
    )


def resigned(kind: str, **changes: Any) -> str:
    claims = issued_claims(kind)
    for name, value in changes.items():
        if value is DROP:
            del claims[name]
        else:
            claims[name] = value
    return codec(kind).sign(claims)


@pytest.mark.parametrize("kind", list(KINDS))
def test_claims_resigned_unchanged_are_the_control(kind: str) -> None:
    assert verify(kind, resigned(kind)) is not None


@pytest.mark.parametrize(
    ("kind", "claim"),
    [("access", claim) for claim in ACCESS_CLAIMS] + [("refresh", c) for c in REFRESH_CLAIMS],
)
def test_a_missing_or_null_required_claim_is_refused(kind: str, claim: str) -> None:
    # null counts as missing, as with PyJWT's `require`, not left to a later type check.
    with pytest.raises(TokenInvalid, match=r"^missing claim$"):
        verify(kind, resigned(kind, **{claim: DROP}))
    with pytest.raises(TokenInvalid, match=r"^missing claim$"):
        verify(kind, resigned(kind, **{claim: None}))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"aud": [AUDIENCE]}, "iss or aud", id="aud-as-a-list"),
        pytest.param({"aud": [AUDIENCE, "other"]}, "iss or aud", id="aud-as-a-list-of-two"),
        pytest.param({"aud": "keyturn-admin"}, "iss or aud", id="aud-other"),
        pytest.param({"iss": "evil"}, "iss or aud", id="iss-other"),
        pytest.param({"iss": [ISSUER]}, "iss or aud", id="iss-as-a-list"),
        pytest.param({"sub": 12345}, "sub or jti", id="sub-not-a-string"),
        pytest.param({"jti": 12345}, "sub or jti", id="jti-not-a-string"),
    ],
)
def test_a_wrong_issuer_audience_or_claim_type_is_refused(
    kind: str, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(TokenInvalid, match=f"^{reason}$"):
        verify(kind, resigned(kind, **changes))


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_validly_signed_token_over_the_length_cap_is_refused_unread(kind: str) -> None:
    token = resigned(kind, pad="x" * MAX_TOKEN_LENGTH)
    with pytest.raises(TokenInvalid, match=r"^length$"):
        verify(kind, token)


@pytest.mark.parametrize(("issued", "verified"), [("access", "refresh"), ("refresh", "access")])
def test_token_service_never_takes_one_kind_for_the_other(issued: str, verified: str) -> None:
    token = resigned(issued)
    assert verify(issued, token) is not None
    with pytest.raises(TokenInvalid):
        verify(verified, token)


@pytest.mark.parametrize("kind", list(KINDS))
def test_tokens_made_by_pyjwt_before_the_switch_still_verify(kind: str) -> None:
    assert verify(kind, pyjwt_sign(issued_claims(kind), kind)) is not None


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * (MAX_TOKEN_LENGTH + 1), id="over-the-length-cap"),
        pytest.param("tøkén.ü.ß", id="non-ascii"),
        pytest.param("\udcff.\udcfe.\udcfd", id="lone-surrogates"),
    ],
)
def test_token_service_refuses_garbage_as_token_invalid(token: str) -> None:
    for kind in KINDS:
        with pytest.raises(TokenInvalid):
            verify(kind, token)


def test_token_service_refuses_a_secret_shorter_than_32_bytes() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        service(access_secret=b"s" * 31)
