"""Domain types shared by the bot, the service and the repository (no I/O)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

DEFAULT_BUSINESS_NAME = "our shop"
#: ISO 4217 minor units that differ from 2 (the rest use cents).
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency.upper(), 2)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit (JPY 0, USD 2, KWD 3 decimals)."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str) -> str:
    return f"{round_money(amount, currency):,} {currency.upper()}"


@dataclass(frozen=True)
class ConversationKey:
    """One conversation: a customer talking to one business number of one tenant."""

    tenant_id: str
    account_id: str
    customer_wa_id: str

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.account_id}:{self.customer_wa_id}"


@dataclass(frozen=True)
class ContactSeen:
    """What recording an inbound message learned about the contact."""

    #: The customer had written before.
    returning: bool
    #: The tenant blocked the contact (the bot does not answer).
    blocked: bool = False
    #: The language the customer chose (None: the tenant's default).
    locale: str | None = None
    #: An operator has the conversation (a hand-off not released).
    handoff_open: bool = False


Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]


class OrderTemplate(BaseModel):
    """The approved template order updates go out with outside the 24 h window; its
    body takes two parameters: the order id and the new status (``{{1}}``, ``{{2}}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    language: Annotated[str, StringConstraints(min_length=2, max_length=15)] = "en"


class BotSettings(BaseModel):
    """A tenant's bot settings, set through ``PUT /v1/tenants/{id}/settings``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    business_name: Annotated[str, StringConstraints(min_length=1, max_length=200)] = (
        DEFAULT_BUSINESS_NAME
    )
    currency: Currency = "USD"
    tax_rate: Annotated[Decimal, Field(ge=0, lt=1, max_digits=7, decimal_places=6)] = Decimal(0)
    locale: Annotated[str, StringConstraints(min_length=2, max_length=15)] = "en"
    welcome_text: Annotated[str, StringConstraints(max_length=1000)] | None = None
    payment_instructions: Annotated[str, StringConstraints(max_length=1000)] | None = None
    #: An unpaid invoice is overdue this long after the order was confirmed (the
    #: reminder scheduler then reminds, and finally cancels the order).
    payment_timeout_hours: Annotated[int, Field(ge=1, le=24 * 90)] = 48
    #: Discount on the subtotal (0.05 = 5 %) when it reaches ``discount_min_subtotal``
    #: (no minimum when unset); 0 = no discount.
    discount_rate: Annotated[Decimal, Field(ge=0, lt=1, max_digits=7, decimal_places=6)] = Decimal(
        0
    )
    discount_min_subtotal: (
        Annotated[Decimal, Field(ge=0, le=Decimal("1e12"), allow_inf_nan=False)] | None
    ) = None
    #: Messages a customer may send a minute; past it the bot says once that it will
    #: reply shortly and leaves the rest unanswered (they still reach the inbox).
    inbound_limit_per_minute: Annotated[int, Field(ge=1, le=10_000)] = 30
    #: Order updates outside the customer's 24 h window go out as this template (none:
    #: they are not sent and the order's event records ``needs_template``).
    order_update_template: OrderTemplate | None = None
    #: Send each new invoice's payment link (the payment provider's page) as a CTA-URL
    #: button; off: customers pay as the instructions say and send their confirmation
    #: number.
    online_payments: bool = False
    #: The published WhatsApp Flow that asks for a delivery address (its answer, the
    #: ``nfm_reply``, is stored on the order); None: not offered.
    address_flow_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


CatalogRef = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")]


class ProductIn(BaseModel):
    """A product as a tenant submits it (JSON or one CSV row)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    sku: Sku
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=1000)] = ""
    price: Annotated[Decimal, Field(ge=0, le=Decimal("1e12"), allow_inf_nan=False)]
    currency: Currency | None = None
    category: Annotated[str, StringConstraints(min_length=1, max_length=100)] = "General"
    stock: Annotated[int, Field(ge=0, le=2_000_000_000)] = 0
    available: bool = True
    #: The name and description in other languages: ``{"es": {"name": "Cemento 50kg",
    #: "description": "…"}}`` (language codes as the bot's catalogs: es, pt, hi, …).
    translations: dict[
        Annotated[str, StringConstraints(min_length=2, max_length=15)],
        dict[Literal["name", "description"], Annotated[str, StringConstraints(max_length=1000)]],
    ] = Field(default_factory=dict)
    #: The tenant's Meta commerce catalog holding the product (connected catalog), and
    #: the product's ``retailer_id`` (content id) there; set, the bot can send it as a
    #: WhatsApp product message and take it from the customer's native cart.
    catalog_id: CatalogRef | None = None
    retailer_id: CatalogRef | None = None

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else None


class Product(BaseModel):
    """A catalog product as stored (currency resolved)."""

    model_config = ConfigDict(frozen=True)

    sku: str
    name: str
    description: str = ""
    price: Decimal
    currency: str
    category: str
    stock: int
    available: bool = True
    translations: dict[str, dict[str, str]] = Field(default_factory=dict)
    catalog_id: str | None = None
    retailer_id: str | None = None

    def _translated(self, locale: str, field: str) -> str | None:
        lang = locale.replace("-", "_").split("_")[0].lower()
        for key in (locale, lang):
            text = (self.translations.get(key) or {}).get(field)
            if text:
                return text
        return None

    def name_in(self, locale: str) -> str:
        """The name in ``locale`` when the catalog has it, else the product's own."""
        return self._translated(locale, "name") or self.name

    def description_in(self, locale: str) -> str:
        return self._translated(locale, "description") or self.description


def resolve_product(item: ProductIn, default_currency: str) -> Product:
    """The stored form of ``item``; raises ValueError when the price has too many decimals."""
    currency = item.currency or default_currency
    if round_money(item.price, currency) != item.price:
        raise ValueError(
            f"price {item.price} has more decimals than {currency} allows ({minor_units(currency)})"
        )
    return Product(
        sku=item.sku,
        name=item.name,
        description=item.description,
        price=item.price,
        currency=currency,
        category=item.category,
        stock=item.stock,
        available=item.available,
        translations={k: dict(v) for k, v in item.translations.items()},
        catalog_id=item.catalog_id,
        retailer_id=item.retailer_id,
    )


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    currency: str
    discount: Decimal = Decimal(0)
    tax_rate: Decimal = Decimal(0)


def compute_totals(
    lines: list[tuple[Decimal, int]],
    *,
    tax_rate: Decimal,
    currency: str,
    discount_rate: Decimal = Decimal(0),
    discount_min_subtotal: Decimal | None = None,
) -> Totals:
    """Subtotal of ``(unit_price, quantity)`` lines, less the discount, plus tax at
    ``tax_rate`` on what is left; each amount rounded half-up to the currency's minor
    unit (line totals first, then the discount, then the tax)."""
    subtotal = sum((round_money(price * qty, currency) for price, qty in lines), Decimal(0))
    subtotal = round_money(subtotal, currency)
    discount = Decimal(0)
    if discount_rate > 0 and (discount_min_subtotal is None or subtotal >= discount_min_subtotal):
        discount = round_money(subtotal * discount_rate, currency)
    taxable = subtotal - discount
    tax = round_money(taxable * tax_rate, currency)
    return Totals(
        subtotal=subtotal,
        tax=tax,
        total=taxable + tax,
        currency=currency,
        discount=discount,
        tax_rate=tax_rate,
    )


def totals_for(lines: list[tuple[Decimal, int]], settings: BotSettings) -> Totals:
    """:func:`compute_totals` with a tenant's currency, tax rate and discount."""
    return compute_totals(
        lines,
        tax_rate=settings.tax_rate,
        currency=settings.currency,
        discount_rate=settings.discount_rate,
        discount_min_subtotal=settings.discount_min_subtotal,
    )


#: WhatsApp's customer service window: free-form messages only this long after the
#: customer's last message; later, only templates.
SERVICE_WINDOW = timedelta(hours=24)


def within_window(last_inbound: datetime | None, now: datetime) -> bool:
    """May a free-form (session) message go to a customer who last wrote at
    ``last_inbound``? A small margin keeps clear of the edge."""
    if last_inbound is None:
        return False
    return now - last_inbound < SERVICE_WINDOW - timedelta(minutes=1)


def short_id(prefix: str, *parts: str) -> str:
    """A short deterministic id: ``prefix`` and 10 base32 characters of a SHA-256 of ``parts``."""
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:10]
