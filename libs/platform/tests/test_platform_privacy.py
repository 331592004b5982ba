"""The keyed blind index of customers' ids (no I/O)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from flowchat_platform.errors import ConfigurationError
from flowchat_platform.privacy import (
    PSEUDONYM_PREFIX,
    BlindIndex,
    blind_index,
    normalise_id,
    privacy_index,
)

KEY = b"k" * 32


def test_one_form_per_id() -> None:
    assert normalise_id("+44 7700-900123") == "447700900123"
    assert normalise_id("US.13491208655302741918") == "US.13491208655302741918"


def test_the_digest_is_keyed_per_tenant_and_form_blind() -> None:
    index = BlindIndex(KEY)
    a = index.digest("t1", "+447700900123")
    assert a == index.digest("t1", "447700900123")
    assert len(a) == 64
    assert "447700900123" not in a
    assert a != index.digest("t2", "447700900123")
    assert a != BlindIndex(b"j" * 32).digest("t1", "447700900123")


def test_a_pseudonym_is_stable_and_reveals_nothing() -> None:
    index = BlindIndex(KEY)
    p = index.pseudonym("t1", "447700900123")
    assert p.startswith(PSEUDONYM_PREFIX)
    assert p == index.pseudonym("t1", "+447700900123")
    assert "4477" not in p


def test_a_short_or_missing_key_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        BlindIndex(b"short")
    with pytest.raises(ConfigurationError, match="FLOWCHAT_PRIVACY_KEY"):
        blind_index(None, "FLOWCHAT_PRIVACY_KEY")


def test_without_a_key_of_its_own_every_service_derives_the_same_one() -> None:
    token = SecretStr("t" * 32)
    derived = privacy_index(None, token).digest("t1", "447700900123")
    assert derived == privacy_index(None, token).digest("t1", "447700900123")
    own = privacy_index(SecretStr("p" * 32), token).digest("t1", "447700900123")
    assert own != derived
