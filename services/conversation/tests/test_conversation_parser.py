from decimal import Decimal

import pytest

from flowchat_conversation.commerce.catalog import parse_csv
from flowchat_conversation.commerce.domain import compute_totals, format_money, round_money
from flowchat_conversation.commerce.parser import parse_order_text, split_quantity
from flowchat_conversation.errors import CatalogCsvError

PRODUCTS = [
    ("CEM-1", "Portland Cement 50kg"),
    ("SND-1", "River Sand"),
    ("SND-2", "Sharp Sand"),
    ("BRK", "Red Bricks"),
    ("NAIL", "Steel Nails 3in"),
]


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        ("Cement x 100", ("Cement", 100)),
        ("2x red bricks", ("red bricks", 2)),
        ("sand 2 bags", ("sand  bags", 2)),
        ("Portland Cement 50kg", ("Portland Cement 50kg", None)),
        ("CEM-1 x 3", ("CEM-1", 3)),
        ("nails *4", ("nails", 4)),
    ],
)
def test_split_quantity(chunk, expected):
    rest, qty = split_quantity(chunk)
    assert (" ".join(rest.split()), qty) == (" ".join(expected[0].split()), expected[1])


def test_issue_example_cement_and_ambiguous_sand():
    lines = parse_order_text("Cement x 100, sand 2 bags", PRODUCTS)
    assert [(line.quantity, line.status) for line in lines] == [(100, "matched"), (2, "ambiguous")]
    assert lines[0].best is not None
    assert lines[0].best.sku == "CEM-1"
    assert {c.sku for c in lines[1].candidates} >= {"SND-1", "SND-2"}


def test_several_separators_and_fillers():
    lines = parse_order_text("I want 10 bricks please and 5 nails; river sand 3", PRODUCTS)
    assert [(line.best.sku if line.best else None, line.quantity) for line in lines] == [
        ("BRK", 10),
        ("NAIL", 5),
        ("SND-1", 3),
    ]
    assert all(line.status == "matched" for line in lines)


def test_exact_sku_matches_and_unknown_is_reported():
    lines = parse_order_text("cem-1 x 2, banana 3", PRODUCTS)
    assert lines[0].status == "matched"
    assert lines[0].best
    assert lines[0].best.sku == "CEM-1"
    assert lines[1].status == "unknown"
    assert lines[1].query == "banana"
    assert not lines[1].candidates


def test_missing_quantity_is_none():
    (line,) = parse_order_text("red bricks", PRODUCTS)
    assert line.quantity is None
    assert line.status == "matched"


def test_money_rounds_per_currency():
    assert round_money(Decimal("1.005"), "USD") == Decimal("1.01")
    assert round_money(Decimal("100.5"), "JPY") == Decimal("101")
    assert round_money(Decimal("1.0005"), "KWD") == Decimal("1.001")
    assert format_money(Decimal("1234.5"), "usd") == "1,234.50 USD"


def test_totals_tax_rounding():
    totals = compute_totals(
        [(Decimal("9.99"), 3), (Decimal("0.335"), 1)], tax_rate=Decimal("0.075"), currency="USD"
    )
    assert totals.subtotal == Decimal("30.31")  # 29.97 + 0.34
    assert totals.tax == Decimal("2.27")  # 2.27325
    assert totals.total == Decimal("32.58")


def test_csv_report_lists_every_rejected_row():
    text = (
        "sku,name,price,category,stock,available\n"
        "A1,Cement,10.50,Build,5,yes\n"
        "A2,,3,Build,1,true\n"
        "A3,Sand,-1,Build,1,true\n"
        "\n"
        "A1,Cement again,11,Build,1,true\n"
        "A4,Nails,1.999,Hardware,1,true\n"
        "A5,Gravel,2,Build,x,maybe\n"
        "A6,Tiles,4,Finish,7,no\n"
    )
    parsed = parse_csv(text, default_currency="USD")
    assert [p.sku for _, p in parsed.products] == ["A1", "A6"]
    assert parsed.products[1][1].available is False
    by_line = {r.line: r for r in parsed.rejected}
    assert sorted(by_line) == [3, 4, 6, 7, 8]
    assert any("name" in e for e in by_line[3].errors)
    assert any("price" in e for e in by_line[4].errors)
    assert any("duplicate sku" in e for e in by_line[6].errors)
    assert any("decimals" in e for e in by_line[7].errors)
    assert len(by_line[8].errors) == 2  # stock and available both reported


def test_csv_header_problems_refuse_the_file():
    with pytest.raises(CatalogCsvError) as info:
        parse_csv("sku,title,price\nA,B,1\n", default_currency="USD")
    assert info.value.details == [{"missing_columns": ["name"], "unknown_columns": ["title"]}]
    with pytest.raises(CatalogCsvError):
        parse_csv("", default_currency="USD")
