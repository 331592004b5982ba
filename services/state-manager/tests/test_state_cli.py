"""The command line without a server: ``--help`` prints the usage and never starts the
service; an unknown command is refused (exit 2); only ``serve`` serves."""

from __future__ import annotations

import pytest

from flowchat_state_manager import __main__ as entry


def test_help_prints_the_usage_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_service() -> None:
        raise AssertionError("--help started the service")

    monkeypatch.setattr(entry, "serve", no_service)
    assert entry.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "purge" in out
    assert "serve" in out


def test_an_unknown_command_or_none_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_service() -> None:
        raise AssertionError("started the service")

    monkeypatch.setattr(entry, "serve", no_service)
    assert entry.main(["bogus"]) == 2
    assert "unknown command 'bogus'" in capsys.readouterr().err
    assert entry.main([]) == 2
    assert "a command is needed" in capsys.readouterr().err


def test_serve_runs_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    monkeypatch.setattr(entry, "serve", lambda: started.append("state-manager"))
    assert entry.main(["serve"]) == 0
    assert started == ["state-manager"]
