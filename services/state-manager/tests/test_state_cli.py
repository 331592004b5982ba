"""The command line without a server: ``--help`` prints the usage and never starts the
service; an unknown command is refused (exit 2)."""

from __future__ import annotations

import pytest

from flowchat_state_manager import __main__ as entry
from flowchat_state_manager import cli


def test_help_prints_the_usage_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_service(*args: object) -> None:
        raise AssertionError("--help started the service")

    monkeypatch.setattr(entry, "run_service", no_service)
    with pytest.raises(SystemExit) as exit_:
        entry.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "purge" in out
    assert "serve" in out


def test_an_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bogus"]) == 2
    assert "unknown command 'bogus'" in capsys.readouterr().err


def test_serve_and_no_command_run_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    monkeypatch.setattr(entry, "run_service", lambda service, *_: started.append(service))
    entry.main([])
    entry.main(["serve"])
    assert started == ["state-manager", "state-manager"]
