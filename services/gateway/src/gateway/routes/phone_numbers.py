"""Phone numbers (api-v1.md section 8). Twilio tokens and SIP passwords leave here only encrypted."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from gateway import views
from gateway.models import PhoneNumber
from gateway.phone_numbers import PhoneNumbers
from gateway.responses import (
    WRITE_RESPONSES,
    Done,
    PhoneNumberCreatedOut,
    PhoneNumberList,
    PhoneNumberOut,
    PhoneNumberUpdatedOut,
)
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import SipTrunkNumberRequest, TwilioNumberRequest, UpdatePhoneNumberRequest

router = api_router()


@router.post(
    "/phone-numbers", tags=["phone-numbers"], response_model=PhoneNumberCreatedOut, responses=WRITE_RESPONSES
)
async def import_twilio_number(body: TwilioNumberRequest, service: Service) -> JSONResponse:
    return respond(await PhoneNumbers(service).import_twilio(body))


@router.post(
    "/phone-numbers/sip-trunk",
    tags=["phone-numbers"],
    response_model=PhoneNumberCreatedOut,
    responses=WRITE_RESPONSES,
)
async def import_sip_trunk_number(body: SipTrunkNumberRequest, service: Service) -> JSONResponse:
    return respond(await PhoneNumbers(service).import_sip_trunk(body))


@router.get("/phone-numbers", tags=["phone-numbers"], response_model=PhoneNumberList)
async def list_phone_numbers(
    service: Service, page_size: PageSize = 30, cursor: str | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(PhoneNumber, cursor, page_size)
    return {"phone_numbers": [views.phone_view(p) for p in rows], "cursor": next_cursor}


@router.get("/phone-numbers/{phone_number_id}", tags=["phone-numbers"], response_model=PhoneNumberOut)
async def get_phone_number(phone_number_id: str, service: Service) -> dict[str, Any]:
    p = await service.get(PhoneNumber, phone_number_id, "Phone number not found")
    return views.phone_view(p) | {
        "supports_inbound": p.supports_inbound,
        "supports_outbound": p.supports_outbound,
    }


@router.patch(
    "/phone-numbers/{phone_number_id}",
    tags=["phone-numbers"],
    response_model=PhoneNumberUpdatedOut,
    responses=WRITE_RESPONSES,
)
async def update_phone_number(
    phone_number_id: str, body: UpdatePhoneNumberRequest, service: Service
) -> JSONResponse:
    return respond(await PhoneNumbers(service).update(phone_number_id, body))


@router.delete(
    "/phone-numbers/{phone_number_id}", tags=["phone-numbers"], response_model=Done, responses=WRITE_RESPONSES
)
async def delete_phone_number(phone_number_id: str, service: Service) -> JSONResponse:
    return respond(await PhoneNumbers(service).delete(phone_number_id))
