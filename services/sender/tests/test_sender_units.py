"""Unit tests without I/O: the error table, GCRA arithmetic, the breaker, Twilio forms."""

from __future__ import annotations

import pytest

from flowchat_contracts import (
    LocationContent,
    MediaContent,
    OutboundCommand,
    TemplateComponent,
    TemplateContent,
    TemplateParameter,
    TextContent,
)
from flowchat_platform.accounts import AccountCredentials
from flowchat_sender import fates
from flowchat_sender.breaker import CircuitBreaker, State
from flowchat_sender.fates import Fate, rule_for
from flowchat_sender.limits import gcra
from flowchat_sender.twilio import build_form, parse_error

# --------------------------------------------------------------------- the table


@pytest.mark.parametrize("code", [1, 2, 4, 80007, 130429, 131000, 131016, 131057, 133004])
def test_retryable_meta_codes(code: int) -> None:
    assert rule_for("meta", code).fate is Fate.RETRY


@pytest.mark.parametrize("code", [0, 190])
def test_token_codes_refresh_credentials(code: int) -> None:
    assert rule_for("meta", code).fate is Fate.REFRESH_CREDENTIALS


def test_pair_rate_holds_the_recipient() -> None:
    assert rule_for("meta", 131056).fate is Fate.RETRY_RECIPIENT
    assert [fates.pair_hold_s(x) for x in range(4)] == [1, 4, 16, 64]


@pytest.mark.parametrize(
    "code",
    [
        3,
        10,
        100,
        200,
        299,
        368,
        130403,
        130472,
        130497,
        131005,
        131008,
        131009,
        131021,
        131026,
        131030,
        131031,
        131037,
        131042,
        131045,
        131047,
        131048,
        131049,
        131050,
        131051,
        131053,
        131063,
        131064,
        132000,
        132001,
        132005,
        132007,
        132012,
        132015,
        132016,
        133010,
        135000,
    ],
)
def test_permanent_meta_codes(code: int) -> None:
    assert rule_for("meta", code).fate is Fate.FAIL


def test_common_wrong_mappings_are_not_copied() -> None:
    # reference §2: 130472 and 131051 are not rate limits, 131047 is not an experiment
    assert rule_for("meta", 130472).fate is Fate.FAIL
    assert rule_for("meta", 131051).fate is Fate.FAIL
    assert "template" in rule_for("meta", 131047).hint
    assert "experiment" not in rule_for("meta", 131047).hint


def test_unknown_codes_fail_unless_the_server_failed() -> None:
    assert rule_for("meta", 999_999).fate is Fate.FAIL
    assert rule_for("meta", 999_999, http_status=503).fate is Fate.RETRY
    assert rule_for("flowchat", fates.HTTP_ERROR, http_status=502).fate is Fate.RETRY
    assert rule_for("flowchat", fates.HTTP_ERROR, http_status=404).fate is Fate.FAIL
    assert rule_for("flowchat", fates.NETWORK_ERROR).fate is Fate.RETRY


def test_twilio_codes() -> None:
    assert rule_for("twilio", 63018).fate is Fate.RETRY
    assert rule_for("twilio", 30001).fate is Fate.RETRY
    assert rule_for("twilio", 63016).fate is Fate.FAIL
    assert "template" in rule_for("twilio", 63016).hint
    assert rule_for("twilio", 20003).fate is Fate.REFRESH_CREDENTIALS
    assert rule_for("twilio", 429, http_status=429).fate is Fate.RETRY


def test_backoff_grows_exponentially() -> None:
    delays = [fates.backoff_s(n) for n in range(1, 5)]
    assert delays == [5, 20, 80, 320]


# --------------------------------------------------------------------- GCRA


def test_gcra_admits_at_the_rate_and_reserves_future_slots() -> None:
    interval = 0.1  # 10/s, no burst
    tat, now = 0.0, 100.0
    ok, wait, tat = gcra(tat, now, interval=interval, tolerance=0.0, max_wait=1.0)
    assert ok
    assert wait == 0
    assert tat == pytest.approx(100.1)
    waits = []
    for _ in range(5):  # five more at the same instant: each waits one interval longer
        ok, wait, tat = gcra(tat, now, interval=interval, tolerance=0.0, max_wait=1.0)
        assert ok
        waits.append(round(wait, 6))
    assert waits == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_gcra_refuses_past_max_wait_without_reserving() -> None:
    ok, wait, tat = gcra(105.0, 100.0, interval=1.0, tolerance=0.0, max_wait=1.0)
    assert not ok
    assert wait == pytest.approx(5.0)
    assert tat == 105.0


def test_gcra_burst_then_one_per_interval() -> None:
    # pair rate: 1 per 6 s, burst 45
    interval, tolerance = 6.0, 6.0 * 44
    tat, now = 0.0, 1000.0
    admitted = 0
    while True:
        ok, wait, new = gcra(tat, now, interval=interval, tolerance=tolerance, max_wait=0.0)
        if not ok:
            break
        tat = new
        admitted += 1
    assert admitted == 45
    ok, wait, _ = gcra(tat, now, interval=interval, tolerance=tolerance, max_wait=0.0)
    assert not ok
    assert wait == pytest.approx(6.0)
    ok, _, _ = gcra(tat, now + 6.0, interval=interval, tolerance=tolerance, max_wait=0.0)
    assert ok


def test_gcra_rate_over_a_long_run() -> None:
    """Admission instants (now + wait) never exceed rate x window + burst."""
    interval, tolerance = 1 / 80, 0.0
    tat, now, instants = 0.0, 0.0, []
    for i in range(2000):
        now = i * 0.001  # callers arrive at 1,000/s
        ok, wait, new = gcra(tat, now, interval=interval, tolerance=tolerance, max_wait=1.0)
        if ok:
            tat = new
            instants.append(now + wait)
    instants.sort()
    for start in instants:
        in_window = sum(1 for t in instants if start <= t < start + 1.0)
        assert in_window <= 80 + 1


# --------------------------------------------------------------------- breaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_on_failure_ratio_with_minimum_volume() -> None:
    clock = Clock()
    changes: list[tuple[str, State]] = []
    b = CircuitBreaker(
        window_s=60,
        min_volume=4,
        failure_ratio=0.5,
        open_s=30,
        clock=clock,
        on_state=lambda k, s: changes.append((k, s)),
    )
    for _ in range(3):  # below the minimum volume: stays closed
        t = b.acquire("a")
        assert t is not None
        t.failure()
    assert b.state("a") is State.CLOSED
    t = b.acquire("a")
    assert t is not None
    t.failure()
    assert b.state("a") is State.OPEN
    assert b.acquire("a") is None
    assert b.acquire("other") is not None  # other accounts unaffected
    assert b.retry_in("a") == pytest.approx(30)
    assert changes == [("a", State.OPEN)]


def test_breaker_half_open_lets_exactly_one_probe() -> None:
    clock = Clock()
    b = CircuitBreaker(window_s=60, min_volume=1, failure_ratio=0.5, open_s=30, clock=clock)
    t = b.acquire("a")
    assert t is not None
    t.failure()
    clock.now = 31
    probe = b.acquire("a")
    assert probe is not None
    assert probe.probe
    assert b.acquire("a") is None  # only one probe
    probe.cancel()  # the probe did not call: another caller may probe
    probe2 = b.acquire("a")
    assert probe2 is not None
    probe2.failure()
    assert b.state("a") is State.OPEN
    clock.now = 62
    probe3 = b.acquire("a")
    assert probe3 is not None
    probe3.success()
    assert b.state("a") is State.CLOSED
    assert b.acquire("a") is not None


def test_breaker_forgets_failures_outside_the_window() -> None:
    clock = Clock()
    b = CircuitBreaker(window_s=60, min_volume=2, failure_ratio=0.5, open_s=30, clock=clock)
    t = b.acquire("a")
    assert t is not None
    t.failure()
    clock.now = 61
    for _ in range(3):
        t = b.acquire("a")
        assert t is not None
        t.success()
    t = b.acquire("a")
    assert t is not None
    t.failure()  # 1 of 4 in the window
    assert b.state("a") is State.CLOSED


# --------------------------------------------------------------------- Twilio


def _twilio_account() -> AccountCredentials:
    return AccountCredentials(
        account_id="acc-t",
        tenant_id="t1",
        provider="twilio",
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="tok" * 8,
        twilio_number="+14155550100",
    )


def _cmd(content: object) -> OutboundCommand:
    return OutboundCommand(
        tenant_id="t1",
        account_id="acc-t",
        idempotency_key="k",
        to="+16505551234",
        content=content,
    )


def test_twilio_text_and_media_forms() -> None:
    cb = "http://gw/webhooks/twilio/acc-t"
    form = dict(build_form(_cmd(TextContent(body="hi")), _twilio_account(), cb))
    assert form == {
        "To": "whatsapp:+16505551234",
        "From": "whatsapp:+14155550100",
        "Body": "hi",
        "StatusCallback": cb,
    }
    media = dict(
        build_form(
            _cmd(MediaContent(type="image", link="https://x/y.jpg", caption="c")),
            _twilio_account(),
            None,
        )
    )
    assert media["MediaUrl"] == "https://x/y.jpg"
    assert media["Body"] == "c"


def test_twilio_templates_use_content_sid_and_variables() -> None:
    content = TemplateContent(
        name="HX" + "a" * 32,
        language="en",
        components=[
            TemplateComponent(
                type="body",
                parameters=[
                    TemplateParameter(type="text", text="Ann"),
                    TemplateParameter(type="text", text="42"),
                ],
            )
        ],
    )
    form = dict(build_form(_cmd(content), _twilio_account(), None))
    assert form["ContentSid"] == "HX" + "a" * 32
    assert form["ContentVariables"] == '{"1":"Ann","2":"42"}'
    assert "Body" not in form


def test_twilio_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(ValueError, match="location"):
        build_form(_cmd(LocationContent(latitude=1, longitude=2)), _twilio_account(), None)
    with pytest.raises(ValueError, match="URL only"):
        build_form(_cmd(MediaContent(type="image", media_id="1")), _twilio_account(), None)


def test_twilio_error_json() -> None:
    err = parse_error(400, b'{"code": 63016, "message": "outside window", "status": 400}')
    assert err.code == 63016
    assert err.message == "outside window"
    assert parse_error(401, b"nope").code == 20003
