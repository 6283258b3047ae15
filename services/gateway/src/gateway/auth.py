"""Who a request is (`gateway.access`'s API keys): admit a request (its key, its scope against the
route's, its rate limit) and manage the stored keys. `gateway.guard` admits every /api/v1 request
with it before a byte of the body is read; `/api/v1/api-keys` and `python -m gateway.keys` manage
keys with it."""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from gateway import access
from gateway.access import Principal, Scope
from gateway.errors import ApiError, Forbidden, NotFound, RateLimited, Unauthorized
from gateway.models import ApiKey
from gateway.settings import Settings
from gateway.uow import UnitOfWork

log = structlog.get_logger("gateway")

# `last_used_at` is written at most this often per key: a request mostly reads its key's row only.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class AccessService:
    """API keys (`gateway.access`): create, list and revoke them; admit a request (who it is, whether
    its key's scope allows the route, whether its rate limit does). Keys from SWITCHBOARD_API_KEYS
    are admin keys with the default rate limit."""

    def __init__(self, settings: Settings, uow: Callable[[], UnitOfWork]) -> None:
        self.settings = settings
        self.uow = uow
        self._env_keys = [key.encode() for key in settings.api_key_list]

    async def admit(self, presented: str, method: str, path: str, *, at: datetime | None = None) -> Principal:
        """The principal of a request to `method path` presenting `presented` (possibly ""), its
        token taken from the key's bucket at `at` (default: the database's clock).

        Raises Unauthorized (401) for a missing, unknown or revoked key; Forbidden (403) when the
        key's scope is below the route's (`access.ROUTE_SCOPES`); RateLimited (429, with the whole
        seconds until the bucket holds a token) when the key used up its rate limit. A stored key
        costs one transaction (its row, its bucket); an env key only its bucket, nothing when
        unlimited."""
        needed = access.required_scope(method, path)
        env = self._env_principal(presented)
        if env is None and access.key_id_of(presented) is None:  # no database read for garbage
            raise Unauthorized("Authentication failed", "Missing or invalid API key")
        if env is not None and env.rate_per_s == 0:
            return env
        async with self.uow() as uow:
            principal = env or await self._stored_principal(uow, presented)
            if principal is None:
                refusal: ApiError | None = Unauthorized("Authentication failed", "Missing or invalid API key")
            elif not access.allows(principal.scope, needed):
                refusal = Forbidden(
                    "Insufficient scope",
                    f"{method} {path} needs an API key with the {needed} scope; this key has the"
                    f" {principal.scope} scope",
                )
            else:
                refusal = await self._rate_limited(uow, principal, at)
        # Raised after the transaction: a refused request's key still counts as used.
        if refusal is not None:
            raise refusal
        assert principal is not None
        return principal

    async def still_admits(self, principal: Principal, needed: Scope) -> bool:
        """Whether a request admitted as `principal` may still go on with a route needing `needed`:
        its stored key is neither revoked nor deleted, and its scope still allows the route. For a
        long request (a Server-Sent Event stream) to re-check, cheaply: one primary-key read, no
        rate-limit token, no `last_used_at` write. A key from SWITCHBOARD_API_KEYS holds for the
        life of the process (they change with a restart only)."""
        if principal.key_id is None:
            return True
        async with self.uow() as uow:
            row = await uow.api_keys.get(principal.key_id)
        return row is not None and row.revoked_at is None and access.allows(Scope(row.scope), needed)

    def _env_principal(self, presented: str) -> Principal | None:
        raw = presented.encode()
        if not raw or not any(hmac.compare_digest(raw, key) for key in self._env_keys):
            return None
        return Principal(
            key_id=None,
            scope=Scope.ADMIN,
            bucket=access.env_key_bucket(presented),
            rate_per_s=self.settings.rate_limit_per_s,
            burst=self.settings.rate_limit_burst,
        )

    async def _stored_principal(self, uow: UnitOfWork, presented: str) -> Principal | None:
        key_id = access.key_id_of(presented)
        if key_id is None:
            return None
        found = await uow.api_keys.active(key_id, LAST_USED_RESOLUTION)
        if found is None or not hmac.compare_digest(found[0].secret_hash, access.hash_key(presented)):
            return None
        key, stale = found
        if stale:
            await uow.api_keys.touch(key_id, LAST_USED_RESOLUTION)
        return Principal(
            key_id=key.key_id,
            scope=Scope(key.scope),
            bucket=key.key_id,
            rate_per_s=self.settings.rate_limit_per_s
            if key.rate_limit_per_s is None
            else key.rate_limit_per_s,
            burst=self.settings.rate_limit_burst if key.rate_limit_burst is None else key.rate_limit_burst,
        )

    async def _rate_limited(
        self, uow: UnitOfWork, principal: Principal, at: datetime | None
    ) -> RateLimited | None:
        if principal.rate_per_s == 0:
            return None
        wait_s = await uow.rate_buckets.take(principal.bucket, principal.rate_per_s, principal.burst, at=at)
        if wait_s is None:
            return None
        retry_after = max(1, math.ceil(wait_s))
        return RateLimited(
            f"Retry after {retry_after} seconds: this API key may make {principal.rate_per_s:g} requests per"
            f" second on average, {principal.burst} at once",
            retry_after,
        )

    async def create_key(
        self,
        name: str,
        scope: Scope,
        *,
        rate_limit_per_s: float | None = None,
        rate_limit_burst: int | None = None,
    ) -> tuple[ApiKey, str]:
        """(the stored key, the key itself: shown to the caller once, never stored or logged)."""
        new = access.generate_key()
        row = ApiKey(
            key_id=new.key_id,
            secret_hash=new.secret_hash,
            name=name,
            scope=str(scope),
            rate_limit_per_s=rate_limit_per_s,
            rate_limit_burst=rate_limit_burst,
        )
        async with self.uow() as uow:
            await uow.api_keys.add(row)
        log.info("gateway.api_key.created", key_id=row.key_id, key_name=name, scope=str(scope))
        return row, new.api_key

    async def keys(self) -> list[ApiKey]:
        async with self.uow() as uow:
            return await uow.api_keys.listed()

    async def key(self, key_id: str) -> ApiKey:
        async with self.uow() as uow:
            row = await uow.api_keys.get(key_id)
        if row is None:
            raise NotFound("API key not found", key_id)
        return row

    async def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a stored key: every replica refuses it from its next request (401). Revoking a
        revoked key changes nothing. Raises NotFound."""
        async with self.uow() as uow:
            row = await uow.api_keys.revoke(key_id)
            await uow.rate_buckets.forget(key_id)
        if row is None:
            raise NotFound("API key not found", key_id)
        log.info("gateway.api_key.revoked", key_id=key_id)
        return row
