"""Write prometheusrule.yaml (a PrometheusRule) from deploy/prometheus/rules/*.yml.

The rule files stay the one source: promtool checks and unit-tests them, the compose
Prometheus loads them, and this script wraps their groups, unchanged, into the object
the Prometheus Operator loads. Run ``uv run python deploy/k8s/components/monitoring/
generate.py`` after editing a rule; ``make test-ops`` fails when the output is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[2] / "prometheus" / "rules"
OUT = HERE / "prometheusrule.yaml"
HEADER = (
    "# Written by generate.py from deploy/prometheus/rules/*.yml: do not edit; edit the\n"
    "# rule files and run `uv run python deploy/k8s/components/monitoring/generate.py`.\n"
)


def groups() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(RULES.glob("*.yml")):
        out += yaml.safe_load(path.read_text())["groups"]
    return out


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL) as literal blocks, as a person would write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "flowchat"},
        "spec": {"groups": groups()},
    }
    return HEADER + yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


def main() -> int:
    OUT.write_text(render())
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
