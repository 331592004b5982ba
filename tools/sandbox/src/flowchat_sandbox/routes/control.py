"""The sandbox's control API (``/sandbox/...``; no auth: dev and test only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from flowchat_platform.http import error_body
from flowchat_sandbox.deps import SandboxDep
from flowchat_sandbox.errors import ControlError, GraphError, TwilioError

router = APIRouter(prefix="/sandbox", tags=["control"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NumberIn(Strict):
    phone_number_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    waba_id: str = Field(min_length=1, max_length=64)
    display_phone_number: str = Field(min_length=3, max_length=32)
    access_token: str = Field(min_length=1)
    app_secret: str = Field(min_length=1)
    webhook_url: AnyHttpUrl
    throughput_mps: int | None = Field(default=None, ge=1, le=10_000)
    verified_name: str | None = None
    quality_rating: Literal["GREEN", "YELLOW", "RED", "NA"] = "GREEN"
    messaging_limit_tier: str | None = None


class TwilioAccountIn(Strict):
    account_sid: str = Field(pattern=r"^AC[0-9A-Za-z]{1,64}$")
    auth_token: str = Field(min_length=1)
    number: str = Field(pattern=r"^(whatsapp:)?\+?\d{5,15}$")
    webhook_url: AnyHttpUrl
    throughput_mps: int | None = Field(default=None, ge=1, le=10_000)


USERNAME = r"^[a-z0-9._]{3,35}$"


class CustomerIn(Strict):
    name: str | None = None
    #: A WhatsApp username (``profile.username`` in webhooks).
    username: str | None = Field(default=None, pattern=USERNAME)
    #: Hide the phone behind the username: webhooks name the person by BSUID only.
    phone_hidden: bool | None = None
    #: Parent BSUIDs enabled: webhooks carry ``parent_user_id`` too.
    parent: bool | None = None
    undeliverable: bool | None = None
    opted_out_marketing: bool | None = None
    delivers: bool | None = None
    reads: bool | None = None
    out_of_order_statuses: bool | None = None
    batch_statuses: bool | None = None


class Reply(Strict):
    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=72)
    description: str | None = None


class TemplateButton(Strict):
    payload: str
    text: str


class Image(Strict):
    id: str | None = None
    link: str | None = None
    mime_type: str = "image/jpeg"
    sha256: str | None = None
    caption: str | None = None
    #: The picture itself (else a tiny JPEG); stored as media the business can fetch.
    data_base64: str | None = Field(default=None, max_length=8 * 1024 * 1024)


class Location(Strict):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class Reaction(Strict):
    message_id: str
    emoji: str


class ProductItem(Strict):
    """One line of a customer's WhatsApp cart, as Meta's ``order`` webhook has it."""

    product_retailer_id: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    item_price: float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class Order(BaseModel):
    catalog_id: str
    text: str | None = None
    product_items: list[ProductItem] = Field(min_length=1)


class NfmReply(Strict):
    """A WhatsApp Flow's answer (``interactive.nfm_reply``): ``response_json`` is the
    Flow's final payload as a JSON string, with the ``flow_token`` it was sent with."""

    name: str = "flow"
    body: str = "Sent"
    response_json: str = Field(min_length=2)


class Context(Strict):
    message_id: str


class CustomerMessageIn(Strict):
    phone_number_id: str | None = None
    twilio_number: str | None = None
    name: str | None = None
    username: str | None = Field(default=None, pattern=USERNAME)
    phone_hidden: bool | None = None
    text: str | None = Field(default=None, min_length=1, max_length=65_536)
    button_reply: Reply | None = None
    list_reply: Reply | None = None
    button: TemplateButton | None = None
    image: Image | None = None
    location: Location | None = None
    reaction: Reaction | None = None
    order: Order | None = None
    nfm_reply: NfmReply | None = None
    context: Context | None = None


class TemplateIn(Strict):
    waba_id: str
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=16)
    status: str = "APPROVED"
    category: str = "UTILITY"
    parameter_format: str = "POSITIONAL"
    components: list[dict[str, Any]] = Field(default_factory=list)
    id: str | None = None


class TemplateStatusIn(Strict):
    status: str
    reason: str | None = None


class FaultsIn(Strict):
    latency_ms: int = Field(default=0, ge=0, le=120_000)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=500, ge=500, le=599)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    error_code: int | None = None
    error_count: int = Field(default=0, ge=-1)
    drop_webhooks: int = Field(default=0, ge=-1)
    duplicate_webhooks: bool = False
    out_of_order_statuses: bool = False
    batch_statuses: bool = False


class ClockIn(Strict):
    advance_s: float = Field(ge=0, le=10 * 365 * 24 * 3600)


@router.post("/clock")
async def advance_clock(body: ClockIn, sandbox: SandboxDep) -> dict[str, Any]:
    """Move the sandbox's time forward: windows close, media ids and URLs expire."""
    offset = sandbox.advance_clock(body.advance_s)
    return {"offset_s": offset, "now": sandbox.clock()}


@router.get(
    "/twilio-cdn/{media_sid}",
    summary="Twilio's CDN: a media redirect's target",
    responses={
        403: {"description": "The URL's hash does not match, or it is older than 5 minutes"},
        404: {"description": "No such media"},
    },
)
async def twilio_cdn(
    media_sid: str,
    sandbox: SandboxDep,
    ext: str = "",
    mac: Annotated[str, Query(alias="hash")] = "",
) -> Response:
    """The bytes behind a Media resource's 307 (valid 5 minutes, no credentials)."""
    data, mime_type = sandbox.twilio.media_bytes(media_sid, ext, mac)
    return Response(data, media_type=mime_type)


@router.get("/media")
async def list_media(sandbox: SandboxDep) -> list[dict[str, Any]]:
    """Every stored media object (uploads and what customers sent), without bytes."""
    return [m.public() for m in sandbox.media.values()]


@router.post("/numbers", status_code=201)
async def register_number(body: NumberIn, sandbox: SandboxDep) -> dict[str, Any]:
    data = body.model_dump()
    data["webhook_url"] = str(body.webhook_url)
    return sandbox.register_number(data).public()


@router.get("/numbers")
async def list_numbers(sandbox: SandboxDep) -> list[dict[str, Any]]:
    return [n.public() for n in sandbox.numbers.values()]


@router.put("/numbers/{phone_number_id}/faults")
async def set_number_faults(
    phone_number_id: str, body: FaultsIn, sandbox: SandboxDep
) -> dict[str, Any]:
    return sandbox.set_faults(phone_number_id, body.model_dump()).public()


@router.delete("/numbers/{phone_number_id}/faults", status_code=204)
async def clear_number_faults(phone_number_id: str, sandbox: SandboxDep) -> Response:
    sandbox.clear_faults(phone_number_id)
    return Response(status_code=204)


@router.post("/twilio/accounts", status_code=201)
async def register_twilio(body: TwilioAccountIn, sandbox: SandboxDep) -> dict[str, Any]:
    data = body.model_dump()
    data["webhook_url"] = str(body.webhook_url)
    return sandbox.register_twilio(data).public()


@router.put("/twilio/accounts/{account_sid}/faults")
async def set_twilio_faults(
    account_sid: str, body: FaultsIn, sandbox: SandboxDep
) -> dict[str, Any]:
    return sandbox.set_faults(account_sid, body.model_dump()).public()


@router.delete("/twilio/accounts/{account_sid}/faults", status_code=204)
async def clear_twilio_faults(account_sid: str, sandbox: SandboxDep) -> Response:
    sandbox.clear_faults(account_sid)
    return Response(status_code=204)


@router.put("/customers/{wa_id}")
async def configure_customer(wa_id: str, body: CustomerIn, sandbox: SandboxDep) -> dict[str, Any]:
    return sandbox.configure_customer(wa_id, body.model_dump(exclude_none=True)).public()


@router.get("/customers/{wa_id}")
async def get_customer(wa_id: str, sandbox: SandboxDep) -> dict[str, Any]:
    return sandbox.customer_by_id(wa_id).public()


@router.post("/customers/{wa_id}/messages")
async def customer_writes(
    wa_id: str, body: CustomerMessageIn, sandbox: SandboxDep, request: Request
) -> dict[str, Any]:
    if (body.phone_number_id is None) == (body.twilio_number is None):
        raise ControlError(422, "invalid_request", "give phone_number_id or twilio_number")
    return await sandbox.customer_writes(
        wa_id, body.model_dump(exclude_none=True), base_url=str(request.base_url)
    )


class UserIdChangeIn(Strict):
    phone_number_id: str


class PreferenceIn(Strict):
    phone_number_id: str
    value: Literal["stop", "resume"] = "stop"
    #: Meta's field is ``user_preferences``; the older name is kept for code expecting it.
    field: Literal["user_preferences", "user_marketing_preferences"] = "user_preferences"


@router.post("/customers/{user}/user-id-change")
async def change_user_id(user: str, body: UserIdChangeIn, sandbox: SandboxDep) -> dict[str, Any]:
    """The person gets a new BSUID: a ``user_changed_user_id`` system message webhook."""
    return await sandbox.cloud.user_id_changed(user, body.phone_number_id)


@router.post("/customers/{user}/preferences")
async def marketing_preference(
    user: str, body: PreferenceIn, sandbox: SandboxDep
) -> dict[str, Any]:
    """The person stops (or resumes) marketing messages in WhatsApp: the
    ``user_preferences`` webhook; marketing templates to them then fail with 131050."""
    return await sandbox.cloud.preference_changed(
        user, body.phone_number_id, body.value, body.field
    )


@router.get("/messages")
async def ledger(
    sandbox: SandboxDep,
    to: str | None = None,
    phone_number_id: str | None = None,
    biz_opaque_callback_data: str | None = None,
) -> list[dict[str, Any]]:
    return sandbox.messages(
        to=to, phone_number_id=phone_number_id, biz_opaque_callback_data=biz_opaque_callback_data
    )


@router.get("/conversations/{wa_id}")
async def conversation(
    wa_id: str, sandbox: SandboxDep, phone_number_id: str | None = None
) -> list[dict[str, Any]]:
    return sandbox.conversation(wa_id, phone_number_id)


@router.get("/webhooks")
async def webhooks(sandbox: SandboxDep, key: str | None = None) -> list[dict[str, Any]]:
    return sandbox.deliveries(key)


@router.post("/templates", status_code=201)
async def create_template(body: TemplateIn, sandbox: SandboxDep) -> dict[str, Any]:
    template = sandbox.create_template(body.model_dump())
    return {"waba_id": template.waba_id, **template.as_graph()}


@router.get("/templates")
async def list_templates(sandbox: SandboxDep, waba_id: str | None = None) -> list[dict[str, Any]]:
    return [
        {"waba_id": t.waba_id, **t.as_graph()}
        for t in sandbox.templates.values()
        if waba_id is None or t.waba_id == waba_id
    ]


@router.patch("/templates/{template_id}")
async def set_template_status(
    template_id: str, body: TemplateStatusIn, sandbox: SandboxDep
) -> dict[str, Any]:
    template = await sandbox.set_template_status(template_id, body.status, body.reason)
    return {"waba_id": template.waba_id, **template.as_graph()}


@router.delete("/state", status_code=204)
async def reset(sandbox: SandboxDep) -> Response:
    await sandbox.reset()
    return Response(status_code=204)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GraphError)
    async def graph_error(_: Request, exc: GraphError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(TwilioError)
    async def twilio_error(_: Request, exc: TwilioError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(ControlError)
    async def control_error(_: Request, exc: ControlError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)
