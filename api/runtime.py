"""What the services need, built once per app from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from api.access import AccessChecker
from api.clients import Network, parse_networks
from api.clock import Clock, utc_now
from api.lost_rotations import LostRotations
from api.passwords import Passwords
from api.ratelimit import Throttle, deployment_key
from api.revocation import RevocationBus
from api.settings import Settings
from api.tokens import TokenService


@dataclass
class Keyturn:
    settings: Settings
    tokens: TokenService
    passwords: Passwords
    access: AccessChecker
    clock: Clock
    trusted_proxies: tuple[Network, ...]
    throttle: Throttle
    lost_rotations: LostRotations
    revocations: RevocationBus | None = None

    @classmethod
    def build(cls, settings: Settings, clock: Clock = utc_now) -> Keyturn:
        tokens = TokenService.from_settings(settings)
        access = AccessChecker(tokens, clock, settings.revocation_cache_ttl)
        return cls(
            settings=settings,
            tokens=tokens,
            passwords=Passwords(
                concurrency=settings.password_hash_concurrency, queue=settings.password_hash_queue
            ),
            access=access,
            clock=clock,
            trusted_proxies=parse_networks(settings.trusted_proxies),
            throttle=Throttle(settings, clock),
            lost_rotations=LostRotations(
                clock,
                settings.redis_url,
                deployment_key(settings.database_url),
                settings.refresh_reuse_grace,
            ),
            revocations=(
                RevocationBus(settings.redis_url, access, settings.revocation_cache_ttl)
                if settings.redis_url
                else None
            ),
        )

    async def start(self) -> None:
        await self.passwords.warm_up()
        if self.revocations is not None:
            await self.revocations.start()

    async def stop(self) -> None:
        await self.access.close()
        if self.revocations is not None:
            await self.revocations.stop()
        await self.throttle.close()
        await self.lost_rotations.close()
        self.passwords.close()
