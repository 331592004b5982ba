"""Rules of the layout, checked on the source tree (no server needed).

- Business logic is pure: importing any service's ``service.py`` (conversation has
  one per package) or ``<name>_service.py`` (one service class per module, e.g. the
  gateway's ``send_service.py``) loads no I/O library; adapters live in their own modules.
- Conversation's ``outreach`` package never imports ``commerce``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IO_LIBRARIES = ("aiohttp", "redis", "asyncpg", "aio_pika", "aiormq", "fastapi", "uvicorn")


def _module_name(path: Path) -> str:
    src = next(p for p in path.parents if p.name == "src")
    return ".".join(path.relative_to(src).with_suffix("").parts)


SERVICE_MODULES = sorted(
    _module_name(p) for p in ROOT.glob("services/*/src/flowchat_*/**/*service.py")
)


def loaded_io_libraries(module: str) -> list[str]:
    """The I/O libraries in ``sys.modules`` after importing ``module`` in a fresh interpreter."""
    probe = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        f"print(json.dumps(sorted(roots & set({IO_LIBRARIES!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_every_service_has_a_service_module() -> None:
    services = {p.name for p in (ROOT / "services").iterdir() if (p / "src").is_dir()}
    owners = {m.split(".")[0].removeprefix("flowchat_").replace("_", "-") for m in SERVICE_MODULES}
    assert services <= owners, services - owners


@pytest.mark.parametrize("module", SERVICE_MODULES)
def test_service_module_loads_no_io_library(module: str) -> None:
    assert loaded_io_libraries(module) == []


def test_the_probe_sees_an_io_library() -> None:
    # The check above can fail: an adapter module does load its library.
    assert "aiohttp" in loaded_io_libraries("flowchat_platform.tenant_client")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def commerce_imports_in_outreach(package: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        bad = sorted(
            n for n in imported_modules(path) if n.startswith("flowchat_conversation.commerce")
        )
        if bad:
            found[str(path.relative_to(package))] = bad
    return found


def test_outreach_never_imports_commerce() -> None:
    outreach = ROOT / "services/conversation/src/flowchat_conversation/outreach"
    assert outreach.is_dir()
    assert commerce_imports_in_outreach(outreach) == {}


def test_the_outreach_rule_sees_a_commerce_import(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("from flowchat_conversation.commerce.domain import Cart\n")
    assert commerce_imports_in_outreach(tmp_path) == {
        "x.py": [
            "flowchat_conversation.commerce.domain",
            "flowchat_conversation.commerce.domain.Cart",
        ]
    }
