"""An invoice as a PDF, rendered with fpdf2 from the same document the API answers: software charges and
infrastructure charges in sections of their own, each with its subtotal (LST-10)."""

from __future__ import annotations

from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

TITLES = {"monthly": "Invoice", "upfront": "Invoice (upfront purchase)", "credit_note": "Credit note"}
# Software and infrastructure charges are shown apart, each with its subtotal (LST-10).
SECTIONS = (("software", "Software charges"), ("infrastructure", "Infrastructure charges"))


def _text(value: str) -> str:
    """The core PDF fonts are Latin-1; anything else is shown with a replacement character."""
    return value.replace("–", "-").replace("×", "x").encode("latin-1", "replace").decode("latin-1")


def render(invoice: dict[str, Any], marketplace: str = "Agora marketplace") -> bytes:
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(
        0, 10, _text(f"{TITLES.get(invoice['kind'], 'Invoice')} {invoice['id']}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.set_font("Helvetica", size=10)
    for label, value in (
        ("Issued by", marketplace),
        ("Buyer account", invoice["buyer"]),
        ("Period", invoice["period"]),
        ("Issued", invoice["issued_at"]),
        ("State", invoice["state"]),
    ):
        pdf.cell(0, 6, _text(f"{label}: {value}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    widths = (48, 30, 30, 24, 24, 24)
    for category, title in SECTIONS:
        lines = [line for line in invoice["lines"] if line["category"] == category]
        if lines or category == "software":
            _section(pdf, widths, title, lines, invoice["subtotals"][category], invoice["currency"])
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 8, _text(f"Total: {invoice['total']} {invoice['currency']}"), align="R")
    return bytes(pdf.output())


def _section(
    pdf: FPDF, widths: tuple[int, ...], title: str, lines: list[dict[str, Any]], subtotal: str, currency: str
) -> None:
    """One category's lines under its heading, with its subtotal (LST-10)."""
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "B", 9)
    for width, heading in zip(
        widths, ("Product", "Charge", "Type / dimension", "Quantity", "Unit price", "Amount"), strict=True
    ):
        pdf.cell(width, 7, heading, border="B")
    pdf.ln()
    for line in lines:
        pdf.set_font("Helvetica", size=9)
        cells = (
            line["product"],
            line["charge"],
            line["instance_type"] or line["dimension"] or "",
            line["quantity"],
            line["unit_price"],
            line["amount"],
        )
        for width, value in zip(widths, cells, strict=True):
            pdf.cell(width, 6, _text(str(value)[:28]))
        pdf.ln()
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(0, 4, _text(line["explain"]), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(0, 7, _text(f"{title} subtotal: {subtotal} {currency}"), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
