"""Meta's codes, across the tree: every code the sandbox can answer has a fate in the sender.

The vocabulary (:mod:`flowchat_contracts.meta_codes`) names the codes; the sandbox's
table (:data:`flowchat_sandbox.errors.META_ERRORS`) says which it answers with; the
sender's table (:mod:`flowchat_sender.fates`) says what each means for a message.
A code the sandbox can send but the sender does not know would fail messages as
"unclassified provider error": :func:`codes_without_fate` finds them, and the
second test shows it does. No server needed.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable
from pathlib import Path

import pytest

from flowchat_contracts import meta_codes
from flowchat_contracts.meta_codes import MetaCode
from flowchat_sandbox import errors as sandbox_errors
from flowchat_sender import fates

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_SRC = ROOT / "tools/sandbox/src/flowchat_sandbox"


def codes_without_fate(codes: Iterable[int]) -> list[int]:
    """The Meta codes among ``codes`` the sender has no fate for (sorted)."""
    return sorted({int(code) for code in codes if not fates.classified("meta", code)})


def sandbox_codes() -> set[int]:
    """Every Meta code the sandbox's table can answer with."""
    return {int(code) for code in sandbox_errors.META_ERRORS}


def raised_in_sandbox_source() -> set[int]:
    """The codes the sandbox's source passes to ``GraphError(...)`` as a literal or a name."""
    found: set[int] = set()
    for path in SANDBOX_SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "GraphError"
                and node.args
            ):
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, int):
                found.add(first.value)
            elif isinstance(first, ast.Attribute) and first.attr in MetaCode.__members__:
                found.add(int(MetaCode[first.attr]))
    return found


def test_every_code_the_sandbox_can_answer_has_a_fate() -> None:
    assert sandbox_codes(), "the sandbox's table is empty: the check would prove nothing"
    assert codes_without_fate(sandbox_codes()) == []


def test_the_check_reports_a_code_without_a_fate(monkeypatch: pytest.MonkeyPatch) -> None:
    # 132068 ("Flow is blocked") is a real Meta code FlowChat neither names nor decides.
    monkeypatch.setitem(sandbox_errors.META_ERRORS, 132068, ("Flow is blocked", "Blocked.", 400))
    assert codes_without_fate(sandbox_codes()) == [132068]


def test_every_code_the_sandbox_raises_is_in_its_table() -> None:
    raised = raised_in_sandbox_source()
    assert {190, 130429, 131047, 131056, 132001} <= raised  # the scan sees the send path
    assert raised - sandbox_codes() == set()


def test_the_sandbox_speaks_the_vocabulary() -> None:
    assert sandbox_codes() <= meta_codes.ALL
    for code, (title, _details, _status) in sandbox_errors.META_ERRORS.items():
        assert title == meta_codes.title(code)


def test_the_sender_knows_every_code_of_the_vocabulary() -> None:
    assert codes_without_fate(meta_codes.ALL) == []
    assert codes_without_fate(meta_codes.API_PERMISSIONS) == []


def test_the_categories_are_disjoint_and_every_code_has_a_title() -> None:
    for (a, codes_a), (b, codes_b) in itertools.combinations(meta_codes.CATEGORIES.items(), 2):
        assert not codes_a & codes_b, f"{a} and {b} share {sorted(codes_a & codes_b)}"
    for name, codes in meta_codes.CATEGORIES.items():
        assert codes, name
        for code in codes:
            assert meta_codes.title(code), (name, code)


def test_the_sets_that_decide_different_actions_never_overlap() -> None:
    deciding = {
        "TOKEN": meta_codes.TOKEN,
        "TRANSIENT": meta_codes.TRANSIENT,
        "PAIR_RATE": meta_codes.PAIR_RATE,
        "SPAM_RATE": meta_codes.SPAM_RATE,
        "WINDOW": meta_codes.WINDOW,
        "OPT_OUT": meta_codes.OPT_OUT,
        "TEMPLATE": meta_codes.TEMPLATE,
    }
    for (a, codes_a), (b, codes_b) in itertools.combinations(deciding.items(), 2):
        assert not codes_a & codes_b, f"{a} and {b} share {sorted(codes_a & codes_b)}"


def test_the_fates_follow_the_sets() -> None:
    expected = {
        fates.Fate.REFRESH_CREDENTIALS: meta_codes.TOKEN,
        fates.Fate.RETRY: meta_codes.TRANSIENT,
        fates.Fate.RETRY_RECIPIENT: meta_codes.PAIR_RATE,
    }
    for fate, codes in expected.items():
        assert {c for c in meta_codes.ALL if fates.rule_for("meta", c).fate is fate} == codes
