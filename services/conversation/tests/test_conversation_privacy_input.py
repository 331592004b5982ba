"""An erasure request names a customer the services can find: a phone number or a
BSUID; anything else is refused (422) before it is recorded or published."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flowchat_conversation.privacy.routes import ErasureIn


def test_a_phone_number_or_a_bsuid_is_accepted() -> None:
    for customer in ("+44 7700 900123", "447700900123", "US.13491208655302741918"):
        assert ErasureIn(customer_id=customer).customer_id == customer


def test_an_id_with_no_phone_number_or_bsuid_in_it_is_refused() -> None:
    # found by schemathesis in the fault suite: "+NqA" was a 500
    for customer in ("+NqA", "abc", "+12 34", "1234567890123456"):
        with pytest.raises(ValidationError):
            ErasureIn(customer_id=customer)
