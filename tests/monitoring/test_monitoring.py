"""Monitoring, proven against the real things: Debian's Prometheus and Alertmanager with the
project's configuration (only target addresses changed), and the real backend binary.

    python3 -m unittest discover -s tests/monitoring -v

Grafana cannot run here (no package of it exists in the registries this project can reach),
so its provisioning is checked by structure, and every query of every dashboard panel is run
against the real Prometheus instead.
"""

from __future__ import annotations

import glob
import json
import os
import re
import socket
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from testkit import OPERATOR_TOKEN, ROOT, get, http, wait_until  # noqa: E402
from testkit.native import NativeStack  # noqa: E402

MONITORING = ROOT / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
DATASOURCE_UID = "prometheus"

# Grafana's variables, as a dashboard opened on the bookstore job would fill them in.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "5s",
    "$__range": "1h",
    "$job": "bookstore",
    "$instance": ".*",
}

PROMQL_WORDS = {
    "sum", "by", "rate", "histogram_quantile", "or", "vector", "max", "time", "changes", "and",
    "without", "on", "ignoring", "bool", "absent", "label_values", "min", "avg", "count",
    "label_replace", "max_over_time", "increase", "last_over_time", "sum_over_time", "predict_linear",
}


def panels(dashboard: dict):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def expressions(dashboard: dict):
    """(panel title, expression) for every query target of every panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def with_variables(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (identifiers that are not functions, keywords,
    label names or label values)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_strings = re.sub(r"\[[^\]]*\]|\$\w+|\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", " ", without_strings)
    without_matchers = re.sub(r"\{[^}]*\}", "", without_strings)
    without_grouping = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_matchers)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_grouping))
    return names - PROMQL_WORDS


class DashboardsAndProvisioning(unittest.TestCase):
    """The files Grafana reads, checked without Grafana."""

    def test_every_alert_links_a_runbook_section_that_exists(self):
        def slug(heading: str) -> str:
            # GitHub's anchors: lowercase, punctuation dropped, spaces to hyphens.
            return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")

        rules = "".join(Path(f).read_text() for f in glob.glob(str(MONITORING / "prometheus/rules/*.yml")))
        links = re.findall(r'- alert: (\w+).*?runbook_url: "([^"]+)"', rules, re.S)
        self.assertEqual(len(links), len(re.findall(r"- alert: ", rules)), "every alert has a runbook_url")
        for alert, link in links:
            with self.subTest(alert=alert):
                path, _, anchor = link.partition("#")
                document = ROOT / path
                self.assertTrue(document.is_file(), f"{link}: no such file")
                headings = re.findall(r"^#+ (.+)$", document.read_text(), re.M)
                self.assertIn(anchor, [slug(h) for h in headings], f"{link}: no such section")

    def test_dashboards_are_valid_json_with_unique_stable_uids(self):
        self.assertGreaterEqual(len(DASHBOARDS), 2)
        uids = [json.loads(path.read_text())["uid"] for path in DASHBOARDS]
        self.assertEqual(len(uids), len(set(uids)), uids)
        # The variables each offers: the SLOs are the whole service's (no instance to pick).
        variables = {"bookstore-api": ["job", "instance"], "bookstore-process": ["job", "instance"],
                     "bookstore-slo": ["job"], "bookstore-host": ["instance", "mountpoint"]}
        self.assertEqual(sorted(uids), sorted(variables))
        for path in DASHBOARDS:
            dashboard = json.loads(path.read_text())
            ids = [p["id"] for p in panels(dashboard)]
            self.assertEqual(len(ids), len(set(ids)), f"{path.name}: panel ids repeat")
            names = [v["name"] for v in dashboard["templating"]["list"]]
            self.assertEqual(names, variables[dashboard["uid"]], path.name)

    def test_every_panel_uses_the_provisioned_data_source(self):
        for path in DASHBOARDS:
            for panel in panels(json.loads(path.read_text())):
                if panel["type"] == "row":
                    self.assertFalse(panel.get("targets"), f"row {panel['title']} has queries")
                    continue
                self.assertEqual(panel["datasource"], {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"])
                for target in panel["targets"]:
                    self.assertEqual(target["datasource"]["uid"], DATASOURCE_UID, panel["title"])

    def test_rate_queries_use_the_rate_interval(self):
        for path in DASHBOARDS:
            for title, expr in expressions(json.loads(path.read_text())):
                for window in re.findall(r"\[([^\]]+)\]", expr):
                    self.assertIn(window, ("$__rate_interval", "$__range"), f"{title}: {expr}")

    def test_the_data_source_is_provisioned_with_the_uid_the_panels_use(self):
        text = (MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text()
        self.assertIn(f"uid: {DATASOURCE_UID}", text)
        self.assertIn("url: http://prometheus:9090", text)
        self.assertIn("type: prometheus", text)
        # Prometheus asks for basic auth; the password is the secret file Prometheus itself
        # reads (no Grafana binary exists here to sign in with it: this reads the provisioning).
        self.assertIn("basicAuth: true", text)
        self.assertIn("basicAuthUser: bookstore", text)
        prometheus = (MONITORING / "prometheus/prometheus.yml").read_text()
        password_file = re.search(r"password_file: (\S+)", prometheus).group(1)
        self.assertIn(f"basicAuthPassword: $__file{{{password_file}}}", text)

    def test_the_dashboard_provider_reads_the_mounted_folder(self):
        provider = (MONITORING / "grafana/provisioning/dashboards/bookstore.yml").read_text()
        self.assertIn("path: /etc/grafana/dashboards", provider)
        compose = (ROOT / "docker-compose.yml").read_text() if (ROOT / "docker-compose.yml").exists() else ""
        if compose:
            # Where Grafana reads provisioning from, not /var/lib/grafana as the original had it.
            self.assertIn("./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro", compose)
            self.assertIn("./monitoring/grafana/dashboards:/etc/grafana/dashboards:ro", compose)


class AgainstRealPrometheus(unittest.TestCase):
    """The backend, Prometheus and Alertmanager, started with the project's configuration."""

    @classmethod
    def setUpClass(cls):
        cls.stack = NativeStack(prefix="bookstore-monitoring-")
        cls.backend_port = cls.stack.ports["backend"]
        cls.prometheus_port = cls.stack.ports["prometheus"]
        cls.alertmanager_port = cls.stack.ports["alertmanager"]
        # A short request time-out, so the test can provoke a real 503 (a stalled upload).
        # It says how many replicas the deployment runs (one), as the stacks do.
        # Scheduled backups on, so that the backup panel and alerts have their series.
        cls.backend = cls.stack.start_backend("--request-timeout", "300ms", "--replicas-expected", "1",
                                              "--backup-dir", str(cls.stack.dir / "backups"))
        cls.stack.start_alertmanager()
        # Debian's node-exporter, for the host dashboard; the "data volume" is the file system
        # this test's database is on (in the stack, the volume mounted at /bookstore-data).
        cls.stack.start_node_exporter()
        mount = cls.stack.dir
        while not os.path.ismount(mount):
            mount = mount.parent
        GRAFANA_VARIABLES["$mountpoint"] = str(mount)
        cls.stack.start_prometheus()
        # Traffic, scrapes, and traffic again: a counter's first sample is not an increase,
        # so every series must be seen before and after it grows for rate() to show it.
        cls.generate_traffic()
        cls.wait_for_scrapes(2)
        cls.generate_traffic()
        cls.wait_for_scrapes(2)
        # And the SLO rules evaluated on what those scrapes saw (every 10 s).
        wait_until(lambda: cls.query_class("job:bookstore_slo_latency_slow:ratio_rate30d"), 30, "the SLO rules' first values")
        # Two scrapes of node-exporter (every 15 s), for its rates.
        wait_until(lambda: cls.query_class('rate(node_cpu_seconds_total{job="node"}[1m])'), 60, "node-exporter's rates")

    @classmethod
    def tearDownClass(cls):
        cls.stack.down()

    @classmethod
    def generate_traffic(cls):
        base = f"http://127.0.0.1:{cls.backend_port}"
        for i in range(10):
            status, _, _ = http("POST", f"{base}/books", {"title": f"Book {i}", "author": "Author", "year": 2000 + i})
            assert status == 201, status
        for path in ["/books", "/books?limit=5&sort=-year", "/books/1", "/books/2", "/healthz", "/readyz",
                     "/books/99999", "/books/abc", "/no/such/route", "/books?limit=0"]:
            get(base + path)
        http("POST", f"{base}/books", {"title": ""})
        # Refused credentials: none, and a wrong one (for the failed-credentials panel).
        http("POST", f"{base}/books", {"title": "x"}, token=None)
        http("POST", f"{base}/books", {"title": "x"}, token="bks_wrong")
        # A server error: an upload that stalls past the time limit gets a 503.
        with socket.create_connection(("127.0.0.1", cls.backend_port)) as s:
            s.sendall(f"POST /books HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\n"
                      "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode())
            answer = s.recv(256)
        assert answer.startswith(b"HTTP/1.1 503"), answer

    @classmethod
    def wait_for_scrapes(cls, scrapes: int):
        def scraped():
            status, body = get(cls.prometheus_url("/api/v1/targets"))
            if status != 200:
                return None
            for target in json.loads(body)["data"]["activeTargets"]:
                if target["labels"]["job"] == "bookstore" and target["health"] == "up":
                    return target["lastScrape"]
            return None

        # The scrape in progress may have started before the traffic did: count it out.
        before = scraped()
        seen = set()
        wait_until(lambda: (seen.add(scraped()) or len(seen - {None, before}) >= scrapes), 60, f"{scrapes} scrapes")

    @classmethod
    def prometheus_url(cls, path: str, **params) -> str:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return f"http://127.0.0.1:{cls.prometheus_port}{path}{query}"

    @classmethod
    def query_answer(cls, expr: str) -> tuple[int, dict]:
        status, body = get(cls.prometheus_url("/api/v1/query", query=expr))
        return status, json.loads(body)

    @classmethod
    def query_class(cls, expr: str) -> list:
        status, answer = cls.query_answer(expr)
        return answer["data"]["result"] if status == 200 else []

    def query(self, expr: str) -> list:
        status, answer = self.query_answer(expr)
        self.assertEqual((status, answer["status"]), (200, "success"), f"{expr}: {answer.get('error')}")
        return answer["data"]["result"]

    def test_1_every_target_is_up(self):
        status, body = get(self.prometheus_url("/api/v1/targets"))
        targets = {t["labels"]["job"]: t["health"] for t in json.loads(body)["data"]["activeTargets"]}
        self.assertEqual(targets, {"bookstore": "up", "prometheus": "up", "alertmanager": "up", "node": "up"})

    def test_2_every_dashboard_query_parses_and_returns_data(self):
        for path in DASHBOARDS:
            for title, expr in expressions(json.loads(path.read_text())):
                with self.subTest(dashboard=path.name, panel=title):
                    result = self.query(with_variables(expr))
                    self.assertTrue(result, f"no data for {expr}")

    def test_3_every_metric_the_dashboards_and_rules_read_is_exported(self):
        _, body = get(f"http://127.0.0.1:{self.backend_port}/metrics")
        exported = {line.split("{")[0].split(" ")[0] for line in body.decode().splitlines() if line and line[0] != "#"}
        _, node = get(f"{self.stack.url('node-exporter')}/metrics")
        exported |= {line.split("{")[0].split(" ")[0] for line in node.decode().splitlines() if line and line[0] != "#"}
        exported |= {"up"}
        used = set()
        for path in DASHBOARDS:
            for _, expr in expressions(json.loads(path.read_text())):
                used |= metric_names(expr)
        recorded = set()
        for rule in self.rules():
            used |= metric_names(rule["query"])
            if rule["type"] == "recording":
                recorded.add(rule["name"])
        self.assertTrue(used)
        self.assertEqual(sorted(used - exported - recorded), [], "used but not exported")

    def rules(self) -> list:
        status, body = get(self.prometheus_url("/api/v1/rules"))
        return [rule for group in json.loads(body)["data"]["groups"] for rule in group["rules"]]

    def alert_state(self, name: str) -> str | None:
        _, body = get(self.prometheus_url("/api/v1/alerts"))
        states = [a["state"] for a in json.loads(body)["data"]["alerts"] if a["labels"]["alertname"] == name]
        return states[0] if states else None

    def test_4_every_rule_is_loaded_parses_and_every_alert_is_quiet_while_all_is_well(self):
        rules = self.rules()
        files = "".join(Path(f).read_text() for f in glob.glob(str(MONITORING / "prometheus/rules/*.yml")))
        for kind, declared in (("alerting", r"- alert: (\w+)"), ("recording", r"- record: ([\w:]+)")):
            names = sorted(rule["name"] for rule in rules if rule["type"] == kind)
            self.assertEqual(names, sorted(re.findall(declared, files)))
        for rule in rules:
            with self.subTest(rule=rule["name"]):
                self.assertEqual(rule["health"], "ok", rule.get("lastError"))
                self.query(rule["query"])
        # Every recorded SLO series has a value: traffic has been seen.
        for rule in rules:
            if rule["type"] == "recording":
                with self.subTest(recorded=rule["name"]):
                    self.assertTrue(self.query(rule["name"]), f"{rule['name']} has no value")
        for rule in rules:
            if rule["type"] != "alerting":
                continue
            with self.subTest(alert=rule["name"]):
                # The one 503 the traffic above provokes, among a few dozen answers, burns the
                # availability budget (0.1% of answers) far faster than it may: its page and
                # its ticket are rightly on their way (their `for:` has not passed).
                if rule["name"] in ("BookstoreAvailabilityFastBurn", "BookstoreAvailabilitySlowBurn"):
                    wait_until(lambda: self.alert_state(rule["name"]) == "pending", 30, f"{rule['name']} pending")
                else:
                    self.assertEqual(rule["state"], "inactive")
                for key in ("summary", "description", "runbook_url"):
                    self.assertIn(key, rule["annotations"])
        # The parts of the rules that should have data now do.
        self.assertTrue(self.query('up{job="bookstore"} == 1'))
        self.assertTrue(self.query('sum by (job, instance) (rate(http_requests_total{job="bookstore", status=~"5.."}[5m])) > 0'))

    def test_5_a_stopped_backend_raises_the_down_alert_pending_then_firing(self):
        self.backend.terminate()
        self.backend.wait(timeout=20)
        stopped = time.monotonic()

        wait_until(lambda: self.query('up{job="bookstore"} == 0'), 20, "the target to be down")
        wait_until(lambda: self.alert_state("BookstoreBackendDown") == "pending", 30, "BookstoreBackendDown pending")
        pending_at = time.monotonic() - stopped
        wait_until(lambda: self.alert_state("BookstoreBackendDown") == "firing", 60, "BookstoreBackendDown firing")
        firing_at = time.monotonic() - stopped

        def in_alertmanager():
            _, body = get(f"http://127.0.0.1:{self.alertmanager_port}/api/v2/alerts")
            return any(a["labels"]["alertname"] == "BookstoreBackendDown" for a in json.loads(body or b"[]"))

        wait_until(in_alertmanager, 30, "Alertmanager to receive BookstoreBackendDown")

        def delivered():
            # Alertmanager's default receiver: the alert-log webhook (a critical alert goes out at once).
            _, body = get(f"{self.stack.url('alert-log')}/alerts")
            return [a for n in json.loads(body or b"[]") for a in n["alerts"]
                    if a["alertname"] == "BookstoreBackendDown" and a["status"] == "firing"]

        alert = wait_until(delivered, 30, "the notification to reach the alert-log receiver")[0]
        self.assertEqual(alert["labels"]["severity"], "critical")
        for key in ("summary", "description", "runbook_url"):
            self.assertTrue(alert[key], f"the notification carries its {key}")
        print(f"\n  BookstoreBackendDown: pending after {pending_at:.1f}s, firing after {firing_at:.1f}s, in Alertmanager, "
              f"delivered to the webhook after {time.monotonic() - stopped:.1f}s")


if __name__ == "__main__":
    unittest.main(verbosity=2)
