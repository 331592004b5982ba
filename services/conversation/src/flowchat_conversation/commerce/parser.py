"""Free-text orders ("Cement x 100, sand 2 bags") parsed into order lines (no I/O).

Each comma / semicolon / newline / "and"-separated chunk becomes one line: its
quantity is an explicit ``x 100`` / ``100x`` or else the first standalone number
(numbers glued to units such as ``50kg`` belong to the product name), the rest is
matched against the catalog's product names with rapidfuzz. A match is *confident*
when it scores high and clearly beats the runner-up; *ambiguous* when it scores
fairly but a second product is close or the score is middling (the bot asks the
customer to confirm); *unknown* otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rapidfuzz import fuzz, process, utils

CONFIDENT_SCORE = 86.0
AMBIGUOUS_SCORE = 60.0
#: A confident best match must beat the runner-up by this much.
CLEAR_MARGIN = 8.0
#: Longer quantities are read as 10**MAX_DIGITS (absurd, refused by the bot).
MAX_DIGITS = 12

_SPLIT = re.compile(r"[,;\n]+|\s+and\s+|\s*&\s*", re.IGNORECASE)
_X_QTY = (
    re.compile(r"(?<![\w\-])x\s*(\d+)\b", re.IGNORECASE),
    re.compile(r"(?<![\w\-.])(\d+)\s*x\b", re.IGNORECASE),
    re.compile(r"\*\s*(\d+)\b"),
)
_BARE_QTY = re.compile(r"(?<![\w.\-])(\d+)(?![\w.])")
_FILLER = re.compile(
    r"\b(?:bags?|pcs|pieces?|units?|items?|packs?|boxes|box|of|please|pls|i|want|need|"
    r"would|like|to|order|buy|get|me|some|a|an|the|"
    # Spanish, Portuguese (the bot's other languages)
    r"quiero|quisiera|necesito|por|favor|de|del|unas?|unos?|el|la|los|las|bolsas?|"
    r"sacos?|unidades?|piezas?|cajas?|quero|queria|preciso|uma?|umas|uns|o|os|as|do|da|"
    r"pe[cç]as)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Candidate:
    sku: str
    name: str
    score: float


@dataclass(frozen=True)
class ParsedLine:
    text: str
    query: str
    quantity: int | None
    status: Literal["matched", "ambiguous", "unknown"]
    candidates: tuple[Candidate, ...] = field(default=())

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


def split_quantity(chunk: str) -> tuple[str, int | None]:
    """``"Cement x 100"`` → ``("Cement", 100)``; no number → quantity None."""
    for pattern in (*_X_QTY, _BARE_QTY):
        m = pattern.search(chunk)
        if m is not None:
            rest = (chunk[: m.start()] + " " + chunk[m.end() :]).strip()
            digits = m.group(1).lstrip("0") or "0"
            # an absurdly long number stays absurd without int() parsing it all
            return rest, (int(digits) if len(digits) <= MAX_DIGITS else 10**MAX_DIGITS)
    return chunk.strip(), None


def _clean(query: str) -> str:
    return re.sub(r"\s+", " ", _FILLER.sub(" ", query)).strip(" -:.*")


def match_product(query: str, products: Sequence[tuple[str, str]]) -> list[Candidate]:
    """Best matches of ``query`` among ``(sku, name)`` pairs, best first."""
    if not query or not products:
        return []
    names: dict[str, str] = {}
    for sku, name in products:
        names.setdefault(sku, name)
    exact_sku = {sku.upper(): sku for sku, _ in products}.get(query.upper())
    if exact_sku is not None:
        return [Candidate(sku=exact_sku, name=names[exact_sku], score=100.0)]
    # a product may be listed under several names (its own, its translation): the best
    # of them counts, once
    choices = [name for _, name in products]
    hits = process.extract(
        query, choices, scorer=fuzz.WRatio, processor=utils.default_process, limit=6
    )
    best: dict[str, Candidate] = {}
    for name, score, index in hits:
        sku = products[index][0]
        if sku not in best:
            best[sku] = Candidate(sku=sku, name=name, score=float(score))
    return list(best.values())[:3]


def classify(candidates: Sequence[Candidate]) -> Literal["matched", "ambiguous", "unknown"]:
    if not candidates or candidates[0].score < AMBIGUOUS_SCORE:
        return "unknown"
    best = candidates[0].score
    runner_up = candidates[1].score if len(candidates) > 1 else 0.0
    if best >= CONFIDENT_SCORE and best - runner_up >= CLEAR_MARGIN:
        return "matched"
    return "ambiguous"


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.casefold()))


def _by_whole_words(
    query: str, candidates: list[Candidate], status: Literal["matched", "ambiguous", "unknown"]
) -> tuple[list[Candidate], Literal["matched", "ambiguous", "unknown"]]:
    """A close call is settled when exactly one candidate's name contains every word
    the customer typed ("sharp sand" → "Sharp sand 25kg", not "River sand 25kg")."""
    words = _words(query)
    covering = [c for c in candidates if words <= _words(c.name)]
    if len(covering) == 1 and len(candidates) > 1:
        best = covering[0]
        return [best, *(c for c in candidates if c is not best)], "matched"
    return candidates, status


def parse_order_text(text: str, products: Sequence[tuple[str, str]]) -> list[ParsedLine]:
    """Every line the customer typed, matched against ``products`` (``(sku, name)``)."""
    lines: list[ParsedLine] = []
    for raw in _SPLIT.split(text):
        chunk = raw.strip()
        if not chunk:
            continue
        rest, quantity = split_quantity(chunk)
        query = _clean(rest)
        if not query:
            continue
        candidates = match_product(query, products)
        status = classify(candidates)
        if status == "ambiguous":
            candidates, status = _by_whole_words(query, candidates, status)
        if status == "matched":
            candidates = candidates[:1]
        lines.append(
            ParsedLine(
                text=chunk,
                query=query,
                quantity=quantity,
                status=status,
                candidates=tuple(c for c in candidates if c.score >= AMBIGUOUS_SCORE),
            )
        )
    return lines
