"""Phone numbers (api-v1.md section 8). Twilio tokens and SIP passwords leave here only encrypted."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from bus.secrets import Keyring
from contracts import topics
from contracts.telephony import (
    DeletePhoneNumber,
    ImportSipTrunkNumber,
    ImportTwilioNumber,
    SipCredentials,
    TrunkConfig,
    UpdatePhoneNumber,
)
from gateway import domain, views
from gateway.errors import BadRequest
from gateway.models import Agent, PhoneNumber
from gateway.responses import (
    WRITE_RESPONSES,
    Done,
    PhoneNumberCreatedOut,
    PhoneNumberList,
    PhoneNumberOut,
    PhoneNumberUpdatedOut,
)
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import (
    InboundTrunkConfigIn,
    OutboundTrunkConfigIn,
    SipTrunkNumberRequest,
    TwilioNumberRequest,
    UpdatePhoneNumberRequest,
)

router = api_router()


@router.post(
    "/phone-numbers", tags=["phone-numbers"], response_model=PhoneNumberCreatedOut, responses=WRITE_RESPONSES
)
async def import_twilio_number(body: TwilioNumberRequest, service: Service) -> JSONResponse:
    command = ImportTwilioNumber(
        phone_number=domain.e164(body.phone_number),
        label=body.label,
        sid=body.sid,
        token_encrypted=domain.encrypt(service.settings.keyring, body.token, "token_encrypted"),
    )
    return respond(await service.execute(command, topic=topics.TELEPHONY_COMMANDS))


def _trunk(
    config: InboundTrunkConfigIn | OutboundTrunkConfigIn | None, keyring: Keyring
) -> TrunkConfig | None:
    """The command's trunk config: every field carried, the password encrypted.

    An inbound `address` is not carried: it can only name ElevenLabs' own endpoint (the schema
    refuses anything else) and ElevenLabs has no such setting.
    """
    if config is None:
        return None
    fields = config.model_dump(exclude={"credentials"}, exclude_none=True)
    if isinstance(config, InboundTrunkConfigIn):
        fields.pop("address", None)
    credentials = None
    if config.credentials is not None:
        password = config.credentials.password
        credentials = SipCredentials(
            username=config.credentials.username,
            password_encrypted=domain.encrypt(keyring, password, "password_encrypted") if password else None,
        )
    return TrunkConfig(**fields, credentials=credentials)


@router.post(
    "/phone-numbers/sip-trunk",
    tags=["phone-numbers"],
    response_model=PhoneNumberCreatedOut,
    responses=WRITE_RESPONSES,
)
async def import_sip_trunk_number(body: SipTrunkNumberRequest, service: Service) -> JSONResponse:
    key = service.settings.keyring
    command = ImportSipTrunkNumber(
        phone_number=domain.e164(body.phone_number),
        label=body.label,
        supports_inbound=body.supports_inbound,
        supports_outbound=body.supports_outbound,
        agent_id=body.agent_id,
        outbound_trunk_config=_trunk(body.outbound_trunk_config, key),
        inbound_trunk_config=_trunk(body.inbound_trunk_config, key),
    )
    return respond(await service.execute(command, topic=topics.TELEPHONY_COMMANDS))


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
    await service.get(PhoneNumber, phone_number_id, "Phone number not found")
    if body.agent_id is None and body.label is None:
        raise BadRequest("Nothing to update", "Provide agent_id and/or label")
    if body.agent_id is not None:
        await service.get(Agent, body.agent_id, "Agent not found")
    command = UpdatePhoneNumber(phone_number_id=phone_number_id, agent_id=body.agent_id, label=body.label)
    return respond(await service.execute(command, topic=topics.TELEPHONY_COMMANDS, key=phone_number_id))


@router.delete(
    "/phone-numbers/{phone_number_id}", tags=["phone-numbers"], response_model=Done, responses=WRITE_RESPONSES
)
async def delete_phone_number(phone_number_id: str, service: Service) -> JSONResponse:
    await service.get(PhoneNumber, phone_number_id, "Phone number not found")
    command = DeletePhoneNumber(phone_number_id=phone_number_id)
    return respond(await service.execute(command, topic=topics.TELEPHONY_COMMANDS, key=phone_number_id))
