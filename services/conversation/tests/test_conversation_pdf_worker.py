"""Invoice PDFs without the weight: the service never imports the PDF library; a
worker process started on demand renders, and exits when idle."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flowchat_conversation.commerce.orders import (
    Invoice,
    InvoiceStatus,
    Order,
    OrderLine,
    OrderStatus,
)
from flowchat_conversation.commerce.pdf_process import ProcessInvoiceRenderer

T0 = datetime(2025, 1, 1, tzinfo=UTC)
HEAVY = ("fpdf", "PIL", "fontTools", "numpy")


def order_and_invoice() -> tuple[Order, Invoice]:
    order = Order(
        order_id="ORD-1",
        tenant_id="t1",
        account_id="a1",
        customer_wa_id="15550001111",
        status=OrderStatus.CONFIRMED,
        currency="USD",
        subtotal=Decimal("50"),
        discount=Decimal("0"),
        tax=Decimal("5"),
        total=Decimal("55"),
        payment_reference="PAY-1",
        payment_status="unpaid",
        customer_payment_ref=None,
        cancel_reason=None,
        created_at=T0,
        updated_at=T0,
        lines=[OrderLine("CEM", "Cément 50kg", Decimal("12.5"), 4, Decimal("50"))],
    )
    invoice = Invoice(
        invoice_id="INV-1",
        number="INV-1",
        status=InvoiceStatus.UNPAID,
        currency="USD",
        subtotal=Decimal("50"),
        discount=Decimal("0"),
        tax_rate=Decimal("0.10"),
        tax=Decimal("5"),
        total=Decimal("55"),
        amount_paid=Decimal("0"),
        issued_at=T0,
        due_at=T0 + timedelta(hours=48),
    )
    return order, invoice


def test_the_service_does_not_import_the_pdf_library():
    code = (
        "import sys, flowchat_conversation.app, flowchat_conversation.commerce.order_service\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


async def test_a_worker_renders_on_demand_and_exits_when_idle():
    order, invoice = order_and_invoice()
    renderer = ProcessInvoiceRenderer(idle_s=0.3)
    try:
        assert not renderer.running()
        pdfs = await asyncio.gather(
            *(renderer.render(order, invoice, business_name="Acme") for _ in range(3))
        )
        assert all(pdf.startswith(b"%PDF-") for pdf in pdfs)
        assert renderer.running()
        assert renderer.started == 1  # one worker for the burst
        for _ in range(100):  # the idle worker goes away
            if not renderer.running():
                break
            await asyncio.sleep(0.05)
        assert not renderer.running()
        again = await renderer.render(order, invoice, business_name="Acme")
        assert again.startswith(b"%PDF-")
        assert renderer.started == 2
    finally:
        await renderer.close()
    assert not renderer.running()


async def test_warming_starts_the_worker_before_the_download():
    order, invoice = order_and_invoice()
    renderer = ProcessInvoiceRenderer(idle_s=30)
    try:
        renderer.warm()
        assert renderer.running()
        pdf = await renderer.render(order, invoice, business_name="Acme")
        assert pdf.startswith(b"%PDF-")
        assert renderer.started == 1  # the warmed worker rendered it
    finally:
        await renderer.close()
