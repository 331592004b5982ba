"""Catalog CSV import, parsed and validated without I/O.

Header row required; ``sku``, ``name`` and ``price`` columns are mandatory,
``description``, ``currency``, ``category``, ``stock``, ``available`` optional. Every
row is either accepted or reported with its line number and reasons: nothing is
dropped silently (blank lines are skipped and not counted as rows).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from flowchat_conversation.commerce.domain import Product, ProductIn, resolve_product
from flowchat_conversation.errors import CatalogCsvError

REQUIRED_COLUMNS = ("sku", "name", "price")
OPTIONAL_COLUMNS = (
    "description",
    "currency",
    "category",
    "stock",
    "available",
    "catalog_id",
    "retailer_id",
)
MAX_ROWS = 10_000
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


@dataclass(frozen=True)
class RejectedRow:
    line: int
    sku: str | None
    errors: list[str]


@dataclass
class ParsedCsv:
    products: list[tuple[int, Product]] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)


def _errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors()]


def _parse_row(values: dict[str, str], default_currency: str) -> tuple[Product | None, list[str]]:
    errors: list[str] = []
    data: dict[str, Any] = {k: v for k, v in values.items() if v != ""}
    available = values.get("available", "").lower()
    if available in _TRUE:
        data["available"] = True
    elif available in _FALSE:
        data["available"] = False
    elif available:
        errors.append(f"available: expected true/false, got {values['available']!r}")
        data.pop("available", None)
    try:
        item = ProductIn.model_validate(data)
        product = resolve_product(item, default_currency)
    except ValidationError as exc:
        return None, errors + _errors(exc)
    except ValueError as exc:
        return None, [*errors, f"price: {exc}"]
    return (None if errors else product), errors


def parse_csv(text: str, *, default_currency: str) -> ParsedCsv:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), skipinitialspace=True)
    header = [h.strip().lower() for h in (reader.fieldnames or []) if h is not None]
    if not header:
        raise CatalogCsvError("the CSV file has no header row")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        raise CatalogCsvError(
            "the CSV header is not usable",
            details=[{"missing_columns": missing, "unknown_columns": unknown}],
        )
    reader.fieldnames = header
    out = ParsedCsv()
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if len(out.products) + len(out.rejected) >= MAX_ROWS:
            raise CatalogCsvError(f"the CSV file has more than {MAX_ROWS} rows")
        if None in row:
            out.rejected.append(RejectedRow(line, row.get("sku"), ["too many fields in the row"]))
            continue
        values = {k: (v or "").strip() for k, v in row.items()}
        if not any(values.values()):
            continue
        product, errors = _parse_row(values, default_currency)
        sku = values.get("sku") or None
        if sku is not None and sku in first_line:
            errors.append(f"duplicate sku (first on line {first_line[sku]})")
        if errors or product is None:
            out.rejected.append(RejectedRow(line, sku, errors))
            continue
        first_line[product.sku] = line
        out.products.append((line, product))
    return out
