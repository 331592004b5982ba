"""An invoice as a one-file PDF (fpdf2, no I/O).

Uses the PDF core font (Helvetica), which covers Latin-1; other characters in
product or business names are transliterated where possible and shown as ``?``
otherwise, so any catalog renders.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal

from fpdf import FPDF

from flowchat_conversation.commerce.domain import format_money, round_money
from flowchat_conversation.commerce.orders import Invoice, Order


def _latin1(text: str) -> str:
    text = text.replace("\u2014", "-").replace("\u2013", "-").replace("•", "-").replace("…", "...")
    out = []
    for ch in text:
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            ascii_ = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(ascii_ or "?")
    return "".join(out)


def render_invoice_pdf(order: Order, invoice: Invoice, *, business_name: str) -> bytes:
    cur = invoice.currency
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(f"Invoice {invoice.number}"))
    pdf.set_author(_latin1(business_name))
    pdf.set_creator("FlowChat")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, _latin1(business_name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(0, 7, _latin1(f"Invoice {invoice.number}"), new_x="LMARGIN", new_y="NEXT")
    meta = [
        ("Order", order.order_id),
        ("Customer", f"+{order.customer_wa_id}"),
        ("Issued", f"{invoice.issued_at:%Y-%m-%d %H:%M} UTC"),
        ("Due", f"{invoice.due_at:%Y-%m-%d %H:%M} UTC"),
        ("Payment reference", order.payment_reference),
        ("Status", invoice.status.value.upper()),
    ]
    for label, value in meta:
        pdf.cell(45, 6, _latin1(label + ":"))
        pdf.cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    widths = (90, 20, 35, 35)
    pdf.set_font("Helvetica", "B", 10)
    for width, title, align in zip(
        widths, ("Item", "Qty", "Unit price", "Amount"), "LRRR", strict=True
    ):
        pdf.cell(width, 7, title, border="B", align=align)
    pdf.ln()
    pdf.set_font("Helvetica", "", 10)
    for line in order.lines:
        name = _latin1(line.name)
        if len(name) > 48:
            name = name[:47] + "..."
        cells = (
            name,
            str(line.quantity),
            format_money(line.unit_price, cur),
            format_money(round_money(line.line_total, cur), cur),
        )
        for width, text, align in zip(widths, cells, "LRRR", strict=True):
            pdf.cell(width, 7, text, align=align)
        pdf.ln()
    pdf.ln(2)
    rate = (invoice.tax_rate * 100).normalize()
    totals: list[tuple[str, Decimal]] = [("Subtotal", invoice.subtotal)]
    if invoice.discount:
        totals.append(("Discount", -invoice.discount))
    totals.append((f"Tax ({rate:f}%)", invoice.tax))
    totals.append(("Total", invoice.total))
    if invoice.amount_paid:
        totals += [("Paid", invoice.amount_paid), ("Balance due", invoice.balance)]
    for label, amount in totals:
        bold = label in ("Total", "Balance due")
        pdf.set_font("Helvetica", "B" if bold else "", 10)
        pdf.cell(widths[0] + widths[1] + widths[2], 7, label, align="R")
        pdf.cell(widths[3], 7, format_money(amount, cur), align="R", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
