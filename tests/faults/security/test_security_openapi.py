"""schemathesis against every service's OpenAPI, with real credentials.

Each operation gets a few generated requests that follow its schema (``positive``) and a
few that break it (``negative``), derandomized so a run is repeatable and bounded
(``FLOWCHAT_FAULTS_SCHEMA_EXAMPLES`` per operation and mode, default 6). The tenant
named in paths is the package's ``fuzz`` tenant, which these requests may trash.

Checks on every answer: no 5xx, a documented status code and content type, and (for
documented ones) a body valid against the response schema. Not generated:
``DELETE /sandbox/state`` and ``POST /sandbox/clock``, which would wipe or age the
sandbox the other tests share.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from security_kit import SecurityEnv

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

EXAMPLES = int(os.environ.get("FLOWCHAT_FAULTS_SCHEMA_EXAMPLES", "6"))
SKIPPED = {("sandbox", "DELETE /sandbox/state"), ("sandbox", "POST /sandbox/clock")}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _auth(env: SecurityEnv, service: str, path: str) -> dict[str, str]:
    stack, fuzz = env.stack, env.fuzz
    if service == "tenant":
        token = (
            stack.env["FLOWCHAT_SERVICE_TOKEN"]
            if path.startswith("/internal/")
            else stack.env["FLOWCHAT_OPERATOR_KEY"]
        )
    elif service == "sender":
        token = stack.env["FLOWCHAT_SERVICE_TOKEN"]
    elif service == "sandbox":
        token = fuzz.access_token
    else:
        token = fuzz.api_key
    return {"Authorization": f"Bearer {token}"}


def _pinned(env: SecurityEnv, path: str) -> dict[str, Any]:
    """The fuzz tenant's ids in paths, so requests get past "not found" into the logic
    (the sandbox's numbers only on its Graph routes: its fault-injection routes stay
    away from the number, so no injected 5xx)."""
    known: dict[str, str] = {"tenant_id": env.fuzz.tenant_id, "account_id": env.fuzz.account_id}
    if path.startswith("/{version}/"):
        known.update(
            phone_number_id=env.fuzz.phone_number_id, waba_id=env.fuzz.waba_id, version="v23.0"
        )
    return {k: v for k, v in known.items() if "{" + k + "}" in path}


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "service", ["gateway", "tenant", "conversation", "sender", "state-manager", "sandbox"]
)
def test_openapi_fuzz(security: SecurityEnv, figures, service: str) -> None:
    base = security.url(service)
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    session = requests.Session()
    failures: Counter[tuple[str, str, int, str]] = Counter()
    examples: dict[tuple[str, str, int, str], str] = {}
    sent = server_errors = operations = 0
    unsatisfiable: list[str] = []

    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        op = result.ok()
        if (service, op.label) in SKIPPED:
            continue
        operations += 1
        headers = _auth(security, service, op.path)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = op.as_strategy(mode, path_parameters=_pinned(security, op.path) or None)

            @given(case=strategy)
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case: Any) -> None:
                nonlocal sent, server_errors
                response = case.call(base_url=base, session=session, headers=headers, timeout=60)
                sent += 1
                if response.status_code >= 500:
                    server_errors += 1
                try:
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except FailureGroup as exc:
                    titles = sorted({f.title for f in exc.exceptions})
                    for title in titles:
                        key = (op.label, mode.value, response.status_code, title)
                        failures[key] += 1
                        examples.setdefault(key, str(exc)[:1500])

            try:
                run()
            except Unsatisfiable:
                unsatisfiable.append(f"{op.label} {mode.value}")

    figures.sent = sent
    figures.processed = sent - sum(failures.values())
    violations = sum(n for (_, _, status, _), n in failures.items() if status < 500)
    figures.notes = (
        f"{service}: operations={operations} requests={sent} 5xx={server_errors} "
        f"schema_violations={violations} examples/op/mode={EXAMPLES} "
        f"no_negative_case={len(unsatisfiable)}"
    )
    report = "\n".join(
        f"{n}x {label} [{mode}] {status} {title}\n{examples[(label, mode, status, title)]}"
        for (label, mode, status, title), n in sorted(failures.items())
    )
    assert server_errors == 0, f"{service}:\n{report}"
    assert not failures, f"{service}:\n{report}"
