"""The fates table speaks the contracts' vocabulary of Meta's codes (issue 20, item 3)."""

import ast
from pathlib import Path

import pytest

from flowchat_contracts import meta_codes
from flowchat_contracts.meta_codes import MetaCode
from flowchat_sender import fates
from flowchat_sender.fates import Fate, classified, rule_for


@pytest.mark.parametrize("code", [102, 463, 467])
def test_the_other_token_codes_refresh_credentials_like_0_and_190(code):
    # Before issue 20 these fell through to "unclassified provider error" (FAIL at once).
    rule = rule_for("meta", code)
    assert rule.fate is Fate.REFRESH_CREDENTIALS
    assert rule.fate is rule_for("meta", 190).fate is rule_for("meta", 0).fate
    assert "unclassified" not in rule.hint
    assert classified("meta", code)


@pytest.mark.parametrize("code", sorted(meta_codes.TOKEN))
def test_every_token_code_refreshes_credentials(code):
    assert rule_for("meta", code).fate is Fate.REFRESH_CREDENTIALS


@pytest.mark.parametrize("code", sorted(meta_codes.TRANSIENT))
def test_every_transient_code_is_retried(code):
    assert rule_for("meta", code).fate is Fate.RETRY


@pytest.mark.parametrize("code", sorted(meta_codes.PAIR_RATE))
def test_the_pair_rate_holds_the_recipient(code):
    assert rule_for("meta", code).fate is Fate.RETRY_RECIPIENT


PERMANENT = (
    meta_codes.ALL - meta_codes.TOKEN - meta_codes.TRANSIENT - meta_codes.PAIR_RATE
) | frozenset(meta_codes.API_PERMISSIONS)


@pytest.mark.parametrize("code", sorted(PERMANENT))
def test_every_other_code_fails_at_once(code):
    assert rule_for("meta", code).fate is Fate.FAIL


@pytest.mark.parametrize("code", sorted(MetaCode))
def test_every_named_code_has_a_fate_of_its_own(code):
    assert classified("meta", code)
    assert rule_for("meta", code).hint != "unclassified provider error"


def test_the_table_knows_no_code_the_vocabulary_does_not_name():
    named = meta_codes.ALL | frozenset(meta_codes.API_PERMISSIONS)
    assert set(fates.META) <= named


def test_an_unnamed_code_is_unclassified():
    assert not classified("meta", 999_999)
    assert rule_for("meta", 999_999).hint == "unclassified provider error"
    assert classified("twilio", fates.TWILIO_WINDOW)
    assert classified("flowchat", fates.NETWORK_ERROR)


def test_the_named_constants_are_the_vocabulary_s_codes():
    assert fates.META_THROUGHPUT == MetaCode.THROUGHPUT_REACHED
    assert fates.META_PAIR_RATE == MetaCode.PAIR_RATE_LIMIT
    assert fates.META_WINDOW == MetaCode.RE_ENGAGEMENT
    assert fates.META_WINDOW in meta_codes.WINDOW
    assert fates.META_THROUGHPUT in meta_codes.THROUGHPUT
    assert fates.META_PAIR_RATE in meta_codes.PAIR_RATE


def test_fates_writes_no_meta_code_as_a_bare_number():
    """Meta's codes in fates.py are names from the vocabulary; Twilio's and FlowChat's
    own (negative) codes are the only integer literals used as codes there."""
    tree = ast.parse(Path(fates.__file__).read_text())
    meta_table = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "META"
    )
    assert isinstance(meta_table.value, ast.Dict)
    literal_keys = [k for k in meta_table.value.keys if isinstance(k, ast.Constant)]
    assert literal_keys == []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id.startswith("META_") for t in node.targets
        ):
            assert not isinstance(node.value, ast.Constant), ast.dump(node)


def test_an_authentication_template_to_a_bsuid_fails_at_once():
    # Meta's 131062: one-tap, zero-tap and copy-code authentication templates need a
    # phone number; a BSUID recipient never gets them, so retrying is pointless.
    code = MetaCode.BSUID_UNSUPPORTED_FOR_MESSAGE
    assert code == 131062
    assert meta_codes.category(code) == "recipient"
    assert meta_codes.title(code)
    rule = rule_for("meta", 131062)
    assert classified("meta", 131062)
    assert rule.fate is Fate.FAIL
    assert "phone number" in rule.hint


@pytest.mark.parametrize("code", sorted(fates.TWILIO))
def test_twilio_fates_are_named_with_twilio_s_titles(code):
    from flowchat_contracts import twilio_codes

    assert code in twilio_codes.TITLES, code
    assert rule_for("twilio", code).hint.startswith(twilio_codes.title(code))
