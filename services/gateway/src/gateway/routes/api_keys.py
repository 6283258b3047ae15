"""API keys (beyond the spec): create, list, read and revoke stored keys; admin scope only
(`gateway.access.ROUTE_SCOPES`). A new key's secret is in the creation answer alone."""

from __future__ import annotations

from gateway.access import KEY_PREFIX, Scope
from gateway.models import ApiKey
from gateway.routes.deps import Access, api_router
from gateway.schemas import ApiKeyList, ApiKeyView, CreateApiKeyRequest, CreatedApiKey

router = api_router()


def _view(row: ApiKey) -> ApiKeyView:
    fields = ("key_id", "name", "scope", "rate_limit_per_s", "rate_limit_burst", "created_at", "last_used_at")
    return ApiKeyView.model_validate(
        {**{f: getattr(row, f) for f in (*fields, "revoked_at")}, "prefix": f"{KEY_PREFIX}{row.key_id}"}
    )


@router.post("/api-keys", tags=["api-keys"], status_code=201)
async def create_api_key(body: CreateApiKeyRequest, access: Access) -> CreatedApiKey:
    row, api_key = await access.create_key(
        body.name,
        Scope(body.scope),
        rate_limit_per_s=body.rate_limit_per_s,
        rate_limit_burst=body.rate_limit_burst,
    )
    return CreatedApiKey(**_view(row).model_dump(), api_key=api_key)


@router.get("/api-keys", tags=["api-keys"])
async def list_api_keys(access: Access) -> ApiKeyList:
    return ApiKeyList(api_keys=[_view(row) for row in await access.keys()])


@router.get("/api-keys/{key_id}", tags=["api-keys"])
async def get_api_key(key_id: str, access: Access) -> ApiKeyView:
    return _view(await access.key(key_id))


@router.delete("/api-keys/{key_id}", tags=["api-keys"])
async def revoke_api_key(key_id: str, access: Access) -> ApiKeyView:
    """Revokes the key at once on every gateway replica; it stays listed with its `revoked_at`."""
    return _view(await access.revoke_key(key_id))
