"""docs/getting-started.md, executed: its ```sh blocks run in order in one bash against a
fresh stack, and the ```text block after one lists lines its output must contain, in
order (spaces collapsed). The guide cannot rot: a command that changed fails here.

The stack is the one every e2e suite starts (stackkit.ProcessStack), its environment
written as ``make up`` writes ``.run/stack.env``; the CLI is the installed ``flowchat``.
One difference from ``make up``: the sender gives up on an unanswered provider call after
2 s instead of 10 s, so the DLQ step parks its message sooner.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowchat_platform.testing import create_database, drop_database
from stackkit import ProcessStack

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "getting-started.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.S | re.M)
MARK = "::getting-started block {}::"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@dataclass
class Block:
    code: str
    expected: list[str]
    line: int


def blocks(text: str) -> list[Block]:
    """The ```sh blocks, each with the lines of the ```text block right after it."""
    found: list[Block] = []
    previous_end = None
    for match in FENCE.finditer(text):
        kind, body = match.group(1), match.group(2)
        line = text.count("\n", 0, match.start()) + 1
        if kind == "sh":
            found.append(Block(body, [], line))
        elif kind == "text" and found and previous_end is not None:
            between = text[previous_end : match.start()]
            if found[-1].line < line and not between.strip():
                found[-1].expected = [x for x in body.splitlines() if x.strip()]
        previous_end = match.end()
    return found


def squash(text: str) -> str:
    return " ".join(text.split())


def check(block: Block, output: str) -> list[str]:
    """The expected lines missing from ``output`` (in order)."""
    lines = [squash(line) for line in output.splitlines()]
    missing, at = [], 0
    for want in (squash(x) for x in block.expected):
        hit = next((i for i in range(at, len(lines)) if want in lines[i]), None)
        if hit is None:
            missing.append(want)
        else:
            at = hit + 1
    return missing


def run_guide(env: dict[str, str], cwd: Path, text: str | None = None) -> None:
    """Run every block of the guide in one bash; fail naming the block that broke."""
    parsed = blocks(text if text is not None else GUIDE.read_text())
    assert parsed, "no ```sh blocks in the guide"
    script = ["set -euo pipefail"]
    for i, block in enumerate(parsed):
        script += [f"echo '{MARK.format(i)}'", block.code]
    proc = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=540,
        check=False,
    )
    outputs = re.split(r"^::getting-started block (\d+)::$", proc.stdout, flags=re.M)
    by_block = {int(outputs[i]): outputs[i + 1] for i in range(1, len(outputs) - 1, 2)}
    last = max(by_block, default=0)
    for i, block in enumerate(parsed):
        if i == last and proc.returncode != 0:
            pytest.fail(
                f"getting-started.md line {block.line}: the block exited "
                f"{proc.returncode}:\n{block.code}\n--- output\n{by_block.get(i, '')}"
            )
        missing = check(block, by_block[i])
        assert not missing, (
            f"getting-started.md line {block.line}: missing {missing} in the output of\n"
            f"{block.code}\n--- output\n{by_block[i]}"
        )
    assert len(by_block) == len(parsed)


def guide_env(stack_env: dict[str, str], env_file: Path) -> dict[str, str]:
    """A new operator's shell: no FLOWCHAT_* of ours, the CLI on PATH, the stack's
    settings in a stack.env file (as ``make up`` leaves them)."""
    env_file.write_text("".join(f"export {k}={v}\n" for k, v in sorted(stack_env.items())))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWCHAT_")}
    bindir = str(Path(sys.executable).parent)
    env.update(
        PATH=f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}",
        FLOWCHAT_STACK_ENV=str(env_file),
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
    )
    return env


@pytest.fixture
def guide_stack(tmp_path: Path, amqp_url: str, redis_url: str) -> Iterator[ProcessStack]:
    database_url = asyncio.run(create_database())
    try:
        stack = ProcessStack.create(
            tmp_path,
            amqp_url=amqp_url,
            database_url=database_url,
            redis_url=redis_url,
            service_env={"sender": {"FLOWCHAT_SENDER_HTTP_TIMEOUT_S": "2"}},
        )
        stack.start(timeout_s=120)
        try:
            yield stack
        finally:
            stack.stop()
    finally:
        asyncio.run(drop_database(database_url))


def test_the_getting_started_guide_works_as_written(guide_stack: ProcessStack, tmp_path: Path):
    home = tmp_path / "operator"
    home.mkdir()
    env = guide_env(guide_stack.env, tmp_path / "stack.env")
    run_guide(env, home)

    # The same CLI, read by a program: JSON and exit statuses from the real APIs.
    def flowchat(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["flowchat", *args],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = flowchat("--json", "tenants", "list")
    assert listed.returncode == 0, listed.stderr
    assert [t["name"] for t in json.loads(listed.stdout)] == ["acme"]
    refused = flowchat("tenants", "show", "tnt_nope", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["status"] == 404
    assert flowchat("dlq", "list", "--json").stdout.strip() == "[]"  # replayed: empty
    env["FLOWCHAT_TENANT_URL"] = f"http://127.0.0.1:{ProcessStack.free_port()}"
    unreachable = flowchat("tenants", "list")
    assert unreachable.returncode == 3, unreachable.stderr


def test_the_harness_catches_a_missing_line_and_a_failing_block(tmp_path: Path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    good = "```sh\necho 'status   read'\n```\n\n```text\nstatus read\n```\n"
    run_guide(env, tmp_path, good)
    with pytest.raises(AssertionError, match="missing"):
        run_guide(env, tmp_path, good.replace("status read\n```", "status failed\n```"))
    with pytest.raises(pytest.fail.Exception, match="exited 3"):
        run_guide(env, tmp_path, "```sh\nexit 3\n```\n")
    assert [b.expected for b in blocks(GUIDE.read_text())][1] == [
        "name acme",
        "status active",
        "currency KES",
        "tax_rate 0.16",
    ]
