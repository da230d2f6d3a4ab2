"""keyturn prune: long-dead sessions and old audit events go; live ones stay."""

from __future__ import annotations

from api.maintenance import prune
from models import AuditEvent
from models import Session as SessionRow
from models import User as UserRow
from tests.conftest import AppFactory, Harness

REFRESH = "mutation ($t: String) { refresh(refreshToken: $t) { refreshToken } }"
DAY = 86400


async def test_prune_removes_sessions_dead_longer_than_the_refresh_lifetime(
    api: Harness, user: UserRow
) -> None:
    revoked = await api.login()
    await api.gql(
        "mutation ($t: String) { logout(refreshToken: $t) }", {"t": revoked["refreshToken"]}
    )
    idle = await api.login()
    rotated_away = idle["refreshToken"]
    idle_next = (await api.gql(REFRESH, {"t": rotated_away})).data["refresh"]["refreshToken"]
    api.clock.advance(6 * DAY)
    live = await api.login()

    # Day 6: nothing has been dead for 7 days yet.
    assert await prune(api.settings, api.clock) == (0, 0)
    api.clock.advance(6 * DAY)
    live_next = (await api.gql(REFRESH, {"t": live["refreshToken"]})).data["refresh"]
    api.clock.advance(2 * DAY + 1)  # day 14: `revoked` died on day 0, `idle` expired on day 7
    sessions, _ = await prune(api.settings, api.clock)
    assert sessions == 2
    remaining = set(await SessionRow.all().values_list("id", flat=True))
    assert {str(sid) for sid in remaining} == {live["session"]["id"]}

    # Tokens of pruned sessions stay refused, the rotated one included.
    for token in (rotated_away, idle_next, revoked["refreshToken"]):
        result = await api.gql(REFRESH, {"t": token})
        assert result.codes == ["INVALID_REFRESH_TOKEN"]
    assert not (await api.gql(REFRESH, {"t": live_next["refreshToken"]})).errors


async def test_prune_removes_audit_events_past_retention_in_batches(
    app_factory: AppFactory,
) -> None:
    api: Harness = await app_factory(audit_retention=30 * DAY)
    await api.create_user()
    for _ in range(3):
        await api.login()
    old_events = await AuditEvent.all().count()
    api.clock.advance(31 * DAY)
    await api.login()
    sessions, events = await prune(api.settings, api.clock)
    assert events == old_events
    assert await AuditEvent.all().count() == 1
    assert sessions == 3
