"""The hot statements' parameters are exactly what the ORM's own fields would send."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from tortoise.exceptions import ValidationError
from tortoise.models import Model

from models import AuditEvent, User
from models import Session as SessionRow
from models.statements import _encoder, encode
from tests.conftest import Harness

NOW = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=UTC)
SAMPLES: dict[str, list[Any]] = {
    "UUIDField": [uuid.uuid4(), None, "6c1f1d0e-9f5e-4d55-a2f4-5b0f6f7f8a9b"],
    "DatetimeField": [
        NOW,
        None,
        NOW.astimezone(timezone(timedelta(hours=5, minutes=30))),  # aware, another zone
        NOW.replace(tzinfo=None),  # naive: the field makes it aware
    ],
    "IntField": [0, 7, -3, 2**31 - 1, True, None],
    "CharField": ["", "refreshed", "é" * 40, None],
    "CharEnumFieldInstance": ["user", "admin", None],
    "JSONField": [None, {"limit": "refresh_ip", "retry_after": 3}],
    "BooleanField": [True, False, None],
}


def _hot_fields() -> list[tuple[type[Model], str]]:
    return [
        (model, name)
        for model in (SessionRow, User, AuditEvent)
        for name, field in model._meta.fields_map.items()
        if type(field).__name__ in SAMPLES
    ]


@pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime")
async def test_every_value_is_encoded_as_the_field_itself_encodes_it(api: Harness) -> None:
    checked = 0
    for model, name in _hot_fields():
        field = model._meta.fields_map[name]
        for value in SAMPLES[type(field).__name__]:
            try:
                expected = field.to_db_value(value, model)
            except ValidationError:  # e.g. 40 characters where 32 fit
                with pytest.raises(ValidationError):
                    encode(model, (name, value))
                continue
            [got] = encode(model, (name, value))
            assert got == expected, (model.__name__, name, value)
            assert type(got) is type(expected), (model.__name__, name, value)
            if isinstance(expected, datetime):
                # Equal instants are not enough: the database gets the text or the offset.
                assert got.isoformat() == expected.isoformat()
                assert got.utcoffset() == expected.utcoffset()
            checked += 1
    assert checked > 60  # every field of the three tables, several values each


async def test_a_value_the_field_refuses_is_still_refused(api: Harness) -> None:
    too_long = "x" * 46
    with pytest.raises(ValidationError):
        SessionRow._meta.fields_map["ip_address"].to_db_value(too_long, SessionRow)
    with pytest.raises(ValidationError):
        encode(SessionRow, ("ip_address", too_long))


async def test_the_shortcuts_are_taken_for_what_the_hot_paths_send(api: Harness) -> None:
    """The point of `_encoder`: a UUID, a UTC datetime, an int and a short str skip the field."""
    for model, name, value in (
        (SessionRow, "id", uuid.uuid4()),
        (SessionRow, "expires_at", NOW),
        (SessionRow, "token_version", 3),
        (AuditEvent, "kind", "refreshed"),
    ):
        assert _encoder(model, name).__name__ == "<lambda>", name
        field = model._meta.fields_map[name]
        assert encode(model, (name, value)) == [field.to_db_value(value, model)]
