"""The CLI without services: parsing, configuration, list shapes, output, exit codes.

HTTP answers come from ``httpx.MockTransport`` (the services' own tests cover the APIs;
tests/test_e2e_cli.py runs the CLI against the real stack)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
import pytest

from flowchat_cli.app import State
from flowchat_cli.client import page_of
from flowchat_cli.config import Config, parse_env_file
from flowchat_cli.main import cli, run
from flowchat_cli.ops import matches
from flowchat_cli.tenant import csv_chunks, reached

ENV = {
    "FLOWCHAT_TENANT_URL": "http://tenant.test",
    "FLOWCHAT_SENDER_URL": "http://sender.test",
    "FLOWCHAT_STATE_URL": "http://state.test",
    "FLOWCHAT_OPERATOR_KEY": "op-key",
    "FLOWCHAT_SERVICE_TOKEN": "svc-token",
    "FLOWCHAT_STACK_ENV": "/nonexistent/stack.env",
}

Handler = Callable[[httpx.Request], httpx.Response]


def invoke(
    argv: list[str], handler: Handler, capsys: pytest.CaptureFixture[str], **env: str
) -> tuple[int, str, str]:
    state = State(environ={**ENV, **env}, transport=httpx.MockTransport(handler))
    code = run(argv, state)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tenants_handler(seen: list[httpx.Request]) -> Handler:
    """Two pages of tenants, the first with a cursor."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.params.get("cursor") == "c2":
            return httpx.Response(
                200, json={"items": [{"tenant_id": "t3", "name": "c"}], "next_cursor": None}
            )
        items = [{"tenant_id": "t1", "name": "a"}, {"tenant_id": "t2", "name": "b"}]
        return httpx.Response(200, json={"items": items, "next_cursor": "c2"})

    return handle


@pytest.mark.parametrize(
    "argv",
    [
        ["tenants", "list", "--json"],
        ["--json", "tenants", "list"],
        ["tenants", "--json", "list"],
    ],
)
def test_json_anywhere_on_the_line_and_cursors_followed(argv, capsys):
    seen: list[httpx.Request] = []
    code, out, _ = invoke(argv, tenants_handler(seen), capsys)
    assert code == 0
    assert [t["tenant_id"] for t in json.loads(out)] == ["t1", "t2", "t3"]
    assert seen[0].headers["authorization"] == "Bearer op-key"
    assert seen[1].url.params["cursor"] == "c2"


def test_a_table_by_default_and_one_field_on_demand(capsys):
    code, out, _ = invoke(["tenants", "list"], tenants_handler([]), capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["tenant_id", "name"]
    assert [line.split()[0] for line in lines[1:]] == ["t1", "t2", "t3"]
    code, out, _ = invoke(["tenants", "list", "--field", "tenant_id"], tenants_handler([]), capsys)
    assert out.split() == ["t1", "t2", "t3"]


def test_a_refusal_exits_1_with_the_apis_error(capsys):
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            404, json={"error": {"code": "tenant_not_found", "message": "no such tenant"}}
        )

    code, out, err = invoke(["tenants", "show", "t9", "--json"], handle, capsys)
    assert code == 1
    assert json.loads(out) == {
        "error": {"status": 404, "code": "tenant_not_found", "message": "no such tenant"}
    }
    assert "404 tenant_not_found: no such tenant" in err


def test_a_service_down_exits_3_and_a_5xx_too(capsys):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    code, _, err = invoke(["tenants", "list"], refuse, capsys)
    assert code == 3
    assert "cannot reach the tenant at http://tenant.test/v1/tenants" in err
    code, _, _ = invoke(["tenants", "list"], lambda r: httpx.Response(503, json={}), capsys)
    assert code == 3


def test_a_missing_credential_or_bad_usage_exits_2(capsys):
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("called the API")

    code, _, err = invoke(["tenants", "list"], never, capsys, FLOWCHAT_OPERATOR_KEY="")
    assert code == 2
    assert "FLOWCHAT_OPERATOR_KEY is not set" in err
    code, _, err = invoke(["tenants", "lst"], never, capsys)
    assert code == 2
    assert "No such command 'lst'" in err
    code, _, err = invoke(["numbers", "list"], never, capsys)
    assert code == 2
    assert "--tenant or FLOWCHAT_TENANT_ID" in err


def test_tax_rate_is_a_fraction(capsys):
    bodies: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(201, json={"tenant_id": "t1", **bodies[-1]})

    code, _, err = invoke(["tenants", "create", "--name", "a", "--tax-rate", "16"], handle, capsys)
    assert code == 2
    assert "tax_rate is a fraction" in err
    assert "0.16" in err
    assert bodies == []
    code, out, _ = invoke(
        ["tenants", "create", "--name", "a", "--tax-rate", "16%", "--field", "tax_rate"],
        handle,
        capsys,
    )
    assert code == 0
    assert out.strip() == "0.16"


def test_the_dlq_filters_hold_even_when_the_api_ignores_them(capsys):
    parked = [
        {
            "message_id": "m1",
            "tenant_id": "t1",
            "account_id": "a1",
            "error_code": 131000,
            "reason": "retries exhausted",
        },
        {
            "message_id": "m2",
            "tenant_id": "t2",
            "account_id": "a2",
            "error_code": 2,
            "reason": "outcome unknown",
        },
        {
            "message_id": "m3",
            "tenant_id": "t1",
            "account_id": "a3",
            "error_code": 2,
            "reason": "outcome unknown",
        },
    ]
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": parked, "count": 3})

    code, out, _ = invoke(
        ["dlq", "list", "--tenant", "t1", "--error-code", "2", "--json"], handle, capsys
    )
    assert code == 0
    assert [p["message_id"] for p in json.loads(out)] == ["m3"]
    assert seen[0].headers["authorization"] == "Bearer svc-token"
    assert seen[0].url.params["tenant_id"] == "t1"
    assert matches(parked[0], {"reason": "EXHAUSTED"})
    assert not matches(parked[0], {"account_id": "a2"})


def test_every_command_has_help_and_json(capsys):
    def walk(group: click.Group, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                found += walk(command, [*path, name])
            else:
                found.append([*path, name])
        return found

    paths = walk(cli, [])
    assert len(paths) > 50
    top = {p[0] for p in paths if p}
    assert top >= {
        "tenants",
        "numbers",
        "keys",
        "users",
        "contacts",
        "campaigns",
        "templates",
        "dlq",
        "messages",
        "endpoints",
    }
    for path in paths:
        code, out, _ = invoke([*path, "--help"], lambda r: httpx.Response(500), capsys)
        assert code == 0, path
        assert "--json" in out, path
    _, out, _ = invoke(["--help"], lambda r: httpx.Response(500), capsys)
    listed = " ".join(out.split())
    for path in paths:
        if len(path) == 2:  # every task is named on the root's help
            assert path[1] in listed, path
    for name in top:
        assert name in out
    assert "Exit status" in out


def test_configuration_from_stack_env_under_the_environment(tmp_path: Path):
    run_dir = tmp_path / ".run"
    run_dir.mkdir()
    (run_dir / "stack.env").write_text(
        "# written by make up\nexport FLOWCHAT_TENANT_URL=http://127.0.0.1:9701/\n"
        "export FLOWCHAT_OPERATOR_KEY='from file'\nFLOWCHAT_API_KEY=fc_file\n"
    )
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    config = Config.load({"FLOWCHAT_API_KEY": "fc_env"}, cwd=nested)
    assert config.source == run_dir / "stack.env"
    assert config.url("tenant") == "http://127.0.0.1:9701"
    assert config.url("gateway") == "http://127.0.0.1:8700"
    assert config.credential("operator") == "from file"
    assert config.credential("api_key") == "fc_env"
    assert parse_env_file("export A='x y'\nB=2\nnot a line\n") == {"A": "x y", "B": "2"}


@pytest.mark.parametrize(
    ("data", "items", "following"),
    [
        ([1, 2], [1, 2], None),
        ({"items": [1], "next_cursor": "c"}, [1], {"cursor": "c"}),
        ({"items": [1], "next_cursor": None}, [1], None),
        ({"items": [1], "next_after": "t1"}, [1], {"after": "t1"}),
        ({"products": [1], "total": 9}, [1], None),
        ({"items": [1], "count": 1}, [1], None),
        ({"data": [1], "paging": {"cursors": {"after": "x"}, "next": "url"}}, [1], {"after": "x"}),
    ],
)
def test_every_list_shape_is_read(data, items, following):
    assert page_of(data) == (items, following)


def test_csv_chunks_keep_the_header_and_every_row():
    text = "phone,name\n+1,a\n+2,b\n\n+3,c\n"
    assert csv_chunks(text, 2) == ["phone,name\n+1,a\n+2,b\n", "phone,name\n+3,c\n"]
    assert csv_chunks("", 2) == []


def test_a_later_status_reaches_an_earlier_one():
    assert reached("read", "delivered")
    assert reached("delivered", "delivered")
    assert not reached("sent", "delivered")
    assert not reached("failed", "delivered")
    assert reached("failed", "failed")
