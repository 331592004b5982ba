"""deploy/prometheus and deploy/grafana: promtool checks the configs and rules and runs
the rule unit tests; then a real Prometheus scrapes a running stack and every dashboard
query, template variable and alert rule is evaluated against what it scraped."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowchat_platform.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
METRIC = re.compile(r"\b(flowchat_[a-z0-9_]+|rabbitmq_[a-z0-9_]+)\b")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("flowchat_grafana_gen", GRAFANA / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """A dashboard's panels, without its row headers (sections, no query of their own)."""
    return [p for p in board["panels"] if p["type"] != "row"]


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every target of every panel."""
    return [
        (name, panel["title"], target["expr"])
        for name, board in dashboards().items()
        for panel in panels(board)
        for target in panel["targets"]
    ]


def rule_exprs() -> list[tuple[str, str]]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [(rule.get("alert") or rule["record"], rule["expr"]) for rule in group["rules"]]
    return out


# ------------------------------------------------------------------ static checks


def test_promtool_check_rules(promtool):
    result = run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules(promtool):
    tests = sorted((PROM / "tests").glob("*.yml"))
    assert tests
    result = run(promtool, "test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_playbook_and_a_unit_test():
    tested = " ".join(p.read_text() for p in (PROM / "tests").glob("*.yml"))
    runbook = (ROOT / "docs" / "operations.md").read_text().lower()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule["alert"]
                assert f"alertname: {name}" in tested, f"{name} has no promtool unit test"
                anchor = rule["annotations"]["runbook_url"].split("#")[1]
                assert f"### {name.lower()}" in runbook, f"no playbook {anchor} for {name}"
                assert rule["labels"]["severity"] in ("warning", "critical")


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-k8s.yml"])
def test_promtool_check_config(config, promtool, tmp_path):
    path = PROM / config
    result = run(promtool, "check", "config", str(path))
    if "field kubernetes_sd_configs not found" in result.stdout + result.stderr:
        # Debian builds Prometheus without Kubernetes discovery; check the rest of the
        # file with the discovery swapped for a static target (upstream images have it).
        data = yaml.safe_load(path.read_text())
        for job in data["scrape_configs"]:
            job.pop("kubernetes_sd_configs", None)
            job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
        data["rule_files"] = [str(PROM / r) for r in data["rule_files"]]
        swapped = tmp_path / config
        swapped.write_text(yaml.safe_dump(data))
        result = run(promtool, "check", "config", str(swapped))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_are_generated_and_current():
    generated = load_generator().render()
    on_disk = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert generated == on_disk, "run `uv run python deploy/grafana/generate.py`"


def test_dashboards_are_provisioned_from_the_prometheus_datasource():
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/flowchat.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    boards = dashboards()
    assert set(boards) == {
        "overview.json",
        "tenant-number.json",
        "sender.json",
        "campaigns.json",
        "rabbitmq.json",
    }
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for board in boards.values():
        assert panels(board)
        for panel in panels(board):
            assert panel["datasource"]["uid"] == uid
            assert panel["targets"], panel["title"]
    rows = {p["title"]: p for p in boards["overview.json"]["panels"] if p["type"] == "row"}
    assert set(rows) == {"Relay: tenants' webhooks", "Inbox: hand-offs to people"}
    assert all(r["gridPos"]["w"] == 24 for r in rows.values())


# ------------------------------------------------------------------ a real Prometheus


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables as a dashboard with "All" selected would."""
    return (
        expr.replace("$__rate_interval", "30s").replace("$tenant", ".*").replace("$account", ".*")
    )


#: The local broker's rabbitmq_prometheus listener (RabbitMQ's default port).
RABBITMQ_PROMETHEUS = "127.0.0.1:15692"


def broker_metrics_endpoint() -> str:
    """The local broker's Prometheus endpoint, enabling ``rabbitmq_prometheus`` on it
    (online, test setup only) when nothing answers: the queue dashboards and alerts read
    the broker's per-queue series."""
    url = f"http://{RABBITMQ_PROMETHEUS}/metrics"
    try:
        urllib.request.urlopen(url, timeout=3).close()
        return RABBITMQ_PROMETHEUS
    except OSError:
        pass
    plugins = shutil.which("rabbitmq-plugins") or "/usr/sbin/rabbitmq-plugins"
    result = run(plugins, "enable", "--online", "rabbitmq_prometheus")
    if result.returncode != 0:
        pytest.skip(f"rabbitmq_prometheus cannot be enabled here: {result.stderr[-500:]}")
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=3).close()
            return RABBITMQ_PROMETHEUS
        except OSError:
            assert time.monotonic() < deadline, "rabbitmq_prometheus never answered"
            time.sleep(0.5)


@pytest.fixture(scope="module")
def prometheus(ops_stack, prometheus_bin, tmp_path_factory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("prometheus")
    broker = broker_metrics_endpoint()
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(ops_stack.stack.env["AMQP_URL"]).path[1:])
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [
            {
                "job_name": name,
                "static_configs": [{"targets": [url.removeprefix("http://")]}],
            }
            for name, url in ops_stack.urls.items()
        ]
        + [
            # as deploy/prometheus/prometheus.yml scrapes it; only the stack's own vhost
            # (the shared local broker holds every other test's queues too)
            {
                "job_name": "rabbitmq-queues",
                "metrics_path": "/metrics/detailed",
                "params": {
                    "family": ["queue_coarse_metrics", "queue_consumer_count"],
                    "vhost": [vhost],
                },
                "static_configs": [{"targets": [broker]}],
            }
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with open(tmp / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [
                prometheus_bin,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()[-3000:]
            try:
                up = prom.query("up")
                if len(up) == len(ops_stack.urls) + 1 and all(s["value"][1] == "1" for s in up):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Prometheus never scraped every service"
            time.sleep(0.3)
        time.sleep(4)  # a few more scrapes, so rate() and increase() have two samples
        yield prom
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(("board", "title", "expr"), dashboard_queries(), ids=lambda v: str(v)[:60])
def test_every_dashboard_query_returns_data(board, title, expr, prometheus):
    result = prometheus.query(grafana_to_promql(expr))
    assert result, f"{board} / {title}: no data for {expr}"


def test_every_metric_named_by_dashboards_and_rules_is_scraped(prometheus):
    known = set(prometheus.get("/api/v1/metadata"))
    named = {m for _, _, e in dashboard_queries() for m in METRIC.findall(e)}
    named |= {m for _, e in rule_exprs() for m in METRIC.findall(e)}
    missing = set()
    for name in named:
        family = re.sub(r"_(bucket|sum|count|total|created)$", "", name)
        if name not in known and family not in known:
            missing.add(name)
    assert not missing, f"named but never scraped: {sorted(missing)}"


def test_dashboard_variables_have_values(prometheus):
    pattern = re.compile(r"label_values\((\w+)(\{.*\})?, (\w+)\)")
    for name, board in dashboards().items():
        for var in board["templating"]["list"]:
            match = pattern.fullmatch(var["definition"])
            assert match, var["definition"]
            metric, selector, label = match.groups()
            series = metric + grafana_to_promql(selector or "").replace('=~".*"', '=~".+"')
            values = prometheus.get(f"/api/v1/label/{label}/values", **{"match[]": series})
            assert values, f"{name}: variable {var['name']} has no values"


def test_every_alert_rule_evaluates_against_live_data(prometheus):
    deadline = time.monotonic() + 10
    while True:
        groups = prometheus.get("/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules):
            break
        assert time.monotonic() < deadline, "rules were never evaluated"
        time.sleep(0.5)
    assert len(rules) == len(rule_exprs())
    bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not bad
    firing = {r["name"] for r in rules if r.get("state") == "firing"}
    assert not firing, f"a healthy stack fires {firing}"


def test_the_broker_reports_the_stacks_queues_and_their_consumers(prometheus):
    """The series the absence alerts rely on: the broker's own, per queue."""
    consumers = {
        r["metric"]["queue"]: float(r["value"][1])
        for r in prometheus.query("rabbitmq_detailed_queue_consumers")
    }
    for queue in ("whatsapp.outbound", "conversation.inbound", "state-manager.status"):
        assert consumers.get(queue, 0) >= 1, (queue, consumers)
    ready = prometheus.query('rabbitmq_detailed_queue_messages_ready{queue="whatsapp.outbound"}')
    assert ready
