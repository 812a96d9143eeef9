#!/usr/bin/env python3
"""The backend failure drill: stop the backend, measure detection, impact and recovery, kill
it ten times under a write load, and prove nothing acknowledged was lost. Run it through
scripts/drill.sh (which installs what it needs).

  --native   starts its own stack from the binaries (backend, nginx, Prometheus,
             Alertmanager) with the project's configuration, addresses changed only
  (default)  uses the running `docker compose` stack: the UI, Prometheus and Alertmanager on
             their published ports (with the monitoring password from the stack's secrets),
             the backend, which publishes no port, at its address on the compose network

Writes artifacts/drill/<mode>.json and artifacts/drill/<mode>.md; exits 1 if a target is
missed. Timings are in seconds; `t` values are measured from the moment the backend was
stopped.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testkit import OPERATOR_TOKEN, ROOT, every_book, http, log, wait_until  # noqa: E402
from testkit.native import BINARY, NativeStack as Processes  # noqa: E402

DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")


def seconds_setting(text: str, pattern: str) -> float:
    match = re.search(pattern, text, re.S)
    if not match:
        raise ValueError(f"setting not found: {pattern}")
    value, unit = re.fullmatch(r"(\d+)([smh])", match.group(1)).groups()
    return int(value) * {"s": 1, "m": 60, "h": 3600}[unit]


def monitoring_settings() -> dict:
    """The intervals the targets are derived from, read from the project's configuration."""
    prometheus = (ROOT / "monitoring/prometheus/prometheus.yml").read_text()
    rules = (ROOT / "monitoring/prometheus/rules/bookstore.yml").read_text()
    return {
        "scrape_interval": seconds_setting(prometheus, r"job_name: bookstore\s+scrape_interval: (\w+)"),
        "scrape_timeout": seconds_setting(prometheus, r"job_name: bookstore\s+scrape_interval: \w+\s+(?:#[^\n]*\s+)*scrape_timeout: (\w+)"),
        "evaluation_interval": seconds_setting(prometheus, r"evaluation_interval: (\w+)"),
        "alert_for": seconds_setting(rules, r"alert: BookstoreBackendDown\s+expr: [^\n]+\s+for: (\w+)"),
        # How long nginx trusts Docker's DNS answer (a restarted container may come back on a
        # new address, which it learns only then), and how often the UI asks /readyz.
        "nginx_resolver_valid": seconds_setting((ROOT / "frontend/nginx/bookstore-upstream.conf").read_text(),
                                                r"resolver [^;]*valid=(\w+)"),
        "ui_health_poll": int(re.search(r"HEALTH_EVERY_MS = (\d+);", (ROOT / "frontend/js/ui.js").read_text())
                              .group(1)) / 1000,
    }


# ---------------------------------------------------------------------------------------
# The two ways to run the stack


class NativeStack:
    """The binaries on loopback, each with the project's configuration (addresses changed,
    by scripts/testkit/native.py)."""

    def __init__(self):
        self.native = Processes(prefix="bookstore-drill-")
        self.backend_url = self.native.url("backend")
        self.ui_url = self.native.url("nginx")
        # The credential the drill writes with: the operator token the native backend has.
        self.token = OPERATOR_TOKEN
        self.prometheus_url = self.native.url("prometheus")
        self.alertmanager_url = self.native.url("alertmanager")
        # Natively, Prometheus and Alertmanager run without the stack's web config.
        self.monitoring_headers: dict = {}

    def up(self) -> None:
        self.start_backend()
        self.native.start_alertmanager()
        self.native.start_prometheus()
        self.native.start_nginx()
        self.pids = {name: p.pid for name, p in self.native.processes.items() if name != "backend"}

    def start_backend(self) -> None:
        self.native.start_backend(wait=False)

    def stop_backend(self) -> None:
        self.native.stop("backend")

    def kill_backend(self) -> None:
        self.native.stop("backend", signal.SIGKILL)

    def after_kill(self) -> None:
        """Natively nothing restarts the process: the drill does, as a supervisor would."""
        self.start_backend()

    def others_unchanged(self) -> dict:
        processes = self.native.processes
        return {name: processes[name].poll() is None and processes[name].pid == pid
                for name, pid in self.pids.items()}

    def integrity(self) -> str:
        result = subprocess.run([str(BINARY), "check-database", "--database-url",
                                 f"sqlite://{self.native.database}"], capture_output=True, text=True)
        return (result.stdout or result.stderr).strip()

    def notifications(self) -> list[dict]:
        """What Alertmanager delivered to the alert-log receiver."""
        status, _, body = http("GET", f"{self.native.url('alert-log')}/alerts")
        return json.loads(body) if status == 200 else []

    def down(self) -> None:
        self.native.down()


class ComposeStack:
    """The running `docker compose` stack, on its published ports; the backend (which has
    none) at its address on the compose network, which the Docker host reaches."""

    def __init__(self, project: str, files: list[str]):
        self.compose = [DOCKER, "compose", "-p", project] + [arg for f in files for arg in ("-f", f)]
        self.backend_url = ""
        self.ui_url = "http://127.0.0.1:8080"
        self.prometheus_url = "http://127.0.0.1:9090"
        self.alertmanager_url = "http://127.0.0.1:9093"

    def run(self, *args: str) -> str:
        return subprocess.run([*self.compose, *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout

    def notifications(self) -> list[dict]:
        """What Alertmanager delivered to the alert-log service (one JSON line each)."""
        lines = self.run("logs", "--no-log-prefix", "alert-log").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def inspect(self, service: str) -> dict:
        container = self.run("ps", "-q", service).strip()
        return json.loads(subprocess.run([DOCKER, "inspect", container], check=True, capture_output=True,
                                         text=True).stdout)[0]

    def find_backend(self) -> None:
        networks = self.inspect("backend")["NetworkSettings"]["Networks"]
        self.backend_url = f"http://{next(iter(networks.values()))['IPAddress']}:8000"

    def up(self) -> None:
        self.starts = {s: (d["State"]["StartedAt"], d["RestartCount"])
                       for s in ("frontend", "prometheus", "alertmanager") for d in [self.inspect(s)]}
        self.find_backend()
        password = self.run("exec", "-T", "prometheus", "cat", "/run/secrets/monitoring-password").strip()
        self.monitoring_headers = basic_auth("bookstore", password)
        # The credential the drill writes with: an API token of its own, made as the README says.
        self.token = self.run("exec", "-T", "backend", "bookstore", "token", "create",
                              "--name", f"drill-{int(time.time())}").strip()

    def start_backend(self) -> None:
        self.run("start", "backend")
        self.find_backend()

    def stop_backend(self) -> None:
        self.run("stop", "backend")

    def kill_backend(self) -> None:
        # As a crash or the out-of-memory killer would: SIGKILL to the process itself. (A
        # `docker kill` would count as a manual stop.)
        os.kill(self.inspect("backend")["State"]["Pid"], signal.SIGKILL)

    def after_kill(self) -> None:
        """The restart policy brings it back; Docker backs off restarts of a container that
        ran under 10 s, so give it that long before the next kill."""
        wait_until(lambda: self.inspect("backend")["State"]["Running"], 60, "the restart policy")
        self.find_backend()

    def settle(self) -> None:
        started = self.inspect("backend")["State"]["StartedAt"]
        since = dt.datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00")
        remaining = 10.5 - (dt.datetime.now(dt.timezone.utc) - since).total_seconds()
        if remaining > 0:
            time.sleep(remaining)

    def others_unchanged(self) -> dict:
        return {s: (d["State"]["StartedAt"], d["RestartCount"]) == self.starts[s]
                for s in self.starts for d in [self.inspect(s)]}

    def integrity(self) -> str:
        result = subprocess.run([*self.compose, "run", "--rm", "--no-deps", "backend", "check-database"],
                                cwd=ROOT, capture_output=True, text=True)
        return (result.stdout.strip().splitlines() or [result.stderr.strip()])[-1]

    def down(self) -> None:
        pass


# ---------------------------------------------------------------------------------------
# The browser


class BannerWatch:
    """The UI in headless Chromium, reporting when its 'unavailable' banner comes and goes."""

    def __init__(self, url: str):
        self.events: list[dict] = []
        self.process = subprocess.Popen(["node", str(ROOT / "tests/e2e/banner-watch.mjs"), url],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self.read, daemon=True).start()
        wait_until(lambda: self.first("ready"), 60, "the page to load in the browser")

    def read(self) -> None:
        for line in self.process.stdout:
            if line.startswith("{"):
                event = json.loads(line)
                event["t"] = event["t"] / 1000
                self.events.append(event)

    def first(self, kind: str, after: float = 0, **fields):
        for event in self.events:
            if event["event"] == kind and event["t"] >= after and all(event.get(k) == v for k, v in fields.items()):
                return event
        return None

    def close(self) -> bool:
        self.process.stdin.close()
        wait_until(lambda: self.first("done"), 30, "the browser to close")
        return self.first("done")["samePage"]


# ---------------------------------------------------------------------------------------
# The drill


def basic_auth(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def prometheus_query(stack, expr: str) -> list:
    status, _, body = http("GET", f"{stack.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}",
                           headers=stack.monitoring_headers)
    return json.loads(body)["data"]["result"] if status == 200 else []


def alert_state(stack) -> str | None:
    status, _, body = http("GET", f"{stack.prometheus_url}/api/v1/alerts", headers=stack.monitoring_headers)
    if status != 200:
        return None
    states = [a["state"] for a in json.loads(body)["data"]["alerts"] if a["labels"]["alertname"] == "BookstoreBackendDown"]
    return states[0] if states else None


def in_alertmanager(stack) -> bool:
    status, _, body = http("GET", f"{stack.alertmanager_url}/api/v2/alerts?active=true",
                           headers=stack.monitoring_headers)
    return status == 200 and any(a["labels"]["alertname"] == "BookstoreBackendDown" for a in json.loads(body))


def book_count(stack) -> int:
    status, headers, _ = http("GET", f"{stack.ui_url}/books?limit=1")
    assert status == 200, f"the UI's API answered {status}"
    return int(headers["X-Total-Count"])


def all_ids(stack) -> set[int]:
    return {b["id"] for b in every_book(stack.backend_url)}


def outage(stack, watch: BannerWatch, results: dict):
    """The backend stopped and started again: what users, Prometheus and Alertmanager saw, up
    to the alert resolving. Returns the wait for the alert's notifications (the resolved one
    comes at the alert group's next interval, a minute), for the caller to finish later."""
    log("stopping the backend (SIGTERM, as `docker compose stop` does)")
    t0 = time.time()
    stack.stop_backend()
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 180
    while len(seen) < 5 and time.monotonic() < deadline:
        now = time.time() - t0
        if "prometheus_down" not in seen and prometheus_query(stack, 'up{job="bookstore"} == 0'):
            seen["prometheus_down"] = now
        state = alert_state(stack)
        if state == "pending" and "alert_pending" not in seen:
            seen["alert_pending"] = now
        if state == "firing" and "alert_firing" not in seen:
            seen["alert_firing"] = now
            seen.setdefault("alert_pending", now)
        if "alert_firing" in seen and "alertmanager" not in seen and in_alertmanager(stack):
            seen["alertmanager"] = now
        if "banner_shown" not in seen:
            event = watch.first("banner", after=t0, visible=True)
            if event:
                seen["banner_shown"] = event["t"] - t0
        time.sleep(0.1)
    results["detection"] = {k: round(v, 2) for k, v in seen.items()}
    results["prometheus_timestamps"] = exact_times(stack, t0)
    # Still down: what do users and the other services see?
    results["contained"] = contained(stack)

    log("starting the backend again")
    t1 = time.time()
    stack.start_backend()
    wait_until(lambda: http("GET", f"{stack.backend_url}/readyz")[0] == 200, 60, "the backend to be ready")
    ready = time.time()
    cleared = wait_until(lambda: watch.first("banner", after=t1, visible=False), 30, "the banner to clear")
    reloaded = wait_until(lambda: watch.first("list", after=cleared["t"]) or watch.first("list", after=t1), 30,
                          "the list to reload")
    resolved = wait_until(lambda: alert_state(stack) is None and time.time(), 120, "the alert to resolve", every=0.2)
    results["recovery"] = {
        "ready": round(ready - t1, 2),
        "banner_cleared_after_ready": round(cleared["t"] - ready, 2),
        "list_reloaded_after_ready": round(max(reloaded["t"] - ready, 0), 2),
        "alert_resolved_after_ready": round(resolved - ready, 2),
    }

    def notified() -> None:
        # A notification that never comes is a missed target, not a crash of the drill.
        try:
            delivered = wait_until(lambda: delivery(stack.notifications(), t0), 150, "the resolved notification",
                                   every=1)
        except TimeoutError:
            delivered = None
        results["notifications"] = {
            "firing_after_stop": round(delivered["firing"] - t0, 2) if delivered else None,
            "firing_annotations": delivered["annotations"] if delivered else False,
            "resolved_after_alert_resolved": round(delivered["resolved"] - resolved, 2) if delivered else None,
        }
    return notified


def delivery(notifications: list[dict], since: float) -> dict | None:
    """When the BookstoreBackendDown notifications (firing, then resolved) reached the
    receiver after `since`, and whether the firing one carried its annotations; None until
    both have."""
    def at(notification: dict) -> float:
        return dt.datetime.fromisoformat(notification["received_at"].replace("Z", "+00:00")).timestamp()

    firing = resolved = None
    for n in notifications:
        for alert in n["alerts"]:
            if alert["alertname"] != "BookstoreBackendDown" or at(n) < since:
                continue
            if alert["status"] == "firing" and firing is None:
                firing = (at(n), all(alert[k] for k in ("summary", "description", "runbook_url")))
            if alert["status"] == "resolved" and firing is not None and resolved is None:
                resolved = at(n)
    if firing is None or resolved is None:
        return None
    return {"firing": firing[0], "annotations": firing[1], "resolved": resolved}


def exact_times(stack, t0: float) -> dict:
    """When Prometheus itself recorded the target down (the failed scrape's sample) and the
    alert firing (the evaluation's ALERTS sample), read from its raw samples: free of the
    drill's polling delay."""

    def first_sample(selector: str, value: str | None = None) -> float | None:
        for series in prometheus_query(stack, f"{selector}[5m]"):
            for at, sample in series["values"]:
                if float(at) >= t0 - 1 and (value is None or sample == value):
                    return float(at)
        return None

    down = first_sample('up{job="bookstore"}', "0")
    firing = first_sample('ALERTS{alertname="BookstoreBackendDown", alertstate="firing"}')
    return {
        "target_down": round(down - t0, 2) if down else None,
        "alert_firing": round(firing - t0, 2) if firing else None,
        "down_to_firing": round(firing - down, 2) if down and firing else None,
    }


def contained(stack) -> dict:
    page_status, _, page = http("GET", f"{stack.ui_url}/")
    api_status, headers, body = http("GET", f"{stack.ui_url}/books")
    try:
        problem = json.loads(body).get("status")
    except ValueError:
        problem = None
    return {
        "ui_page_loads": page_status == 200 and b"Bookstore" in page,
        "api_answers_problem_502_503": api_status in (502, 503) and problem == api_status
        and headers.get("Content-Type", "").startswith("application/problem+json"),
        "other_services_unchanged": stack.others_unchanged(),
    }


def kills_under_load(stack, rounds: int, load_seconds: float, results: dict) -> None:
    acknowledged: set[int] = set()
    lock = threading.Lock()

    def writer(stop: threading.Event, n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            status, _, body = http("POST", f"{stack.backend_url}/books",
                                   {"title": f"Drill {n}-{i}", "author": "Load", "year": 2000}, timeout=5,
                                   token=stack.token)
            if status == 201:
                with lock:
                    acknowledged.add(json.loads(body)["id"])

    for round_ in range(1, rounds + 1):
        if hasattr(stack, "settle"):
            stack.settle()
        stop = threading.Event()
        with ThreadPoolExecutor(8) as pool:
            for n in range(8):
                pool.submit(writer, stop, n)
            time.sleep(load_seconds)
            stack.kill_backend()
            time.sleep(0.3)
            stop.set()
        stack.after_kill()
        wait_until(lambda: http("GET", f"{stack.backend_url}/readyz")[0] == 200, 90, "the backend after SIGKILL")
        log(f"SIGKILL {round_}/{rounds}: {len(acknowledged)} writes acknowledged so far")
    present = all_ids(stack)
    lost = sorted(acknowledged - present)
    results["kills"] = {
        "rounds": rounds,
        "acknowledged_writes": len(acknowledged),
        "lost": len(lost),
        "lost_ids_sample": lost[:20],
        "integrity_check": stack.integrity(),
    }


def backup_rehearsal(stack: NativeStack) -> dict:
    """A backup taken with `bookstore backup` while 4 writers keep going, then restored into a
    new place with `bookstore restore` and served: is every book acknowledged before the backup
    began in it, and does the restored server hold exactly the copy? Times both commands."""
    import sqlite3
    import tempfile

    acknowledged: list[int] = []
    lock, stop = threading.Lock(), threading.Event()

    def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            status, _, body = http("POST", f"{stack.backend_url}/books",
                                   {"title": f"Backed up {n}-{i}", "author": "Drill", "year": 2001}, timeout=5)
            if status == 201:
                with lock:
                    acknowledged.append(json.loads(body)["id"])

    work = Path(tempfile.mkdtemp(prefix="bookstore-drill-backup-"))
    copy = work / "copy.db"
    with ThreadPoolExecutor(4) as pool:
        for n in range(4):
            pool.submit(writer, n)
        time.sleep(1)
        with lock:
            before = set(acknowledged)
        started = time.monotonic()
        backed_up = subprocess.run([str(BINARY), "backup", str(copy), "--database-url",
                                    f"sqlite://{stack.native.database}"], capture_output=True, text=True)
        backup_seconds = time.monotonic() - started
        time.sleep(0.5)
        stop.set()
    if backed_up.returncode != 0:
        raise RuntimeError(f"bookstore backup failed: {backed_up.stderr}")
    with sqlite3.connect(copy) as db:
        saved = {row[0] for row in db.execute("SELECT id FROM books")}
    target = work / "restored" / "bookstore.db"
    started = time.monotonic()
    restored = subprocess.run([str(BINARY), "restore", str(copy), "--database-url", f"sqlite://{target}"],
                              capture_output=True, text=True)
    restore_seconds = time.monotonic() - started
    if restored.returncode != 0:
        raise RuntimeError(f"bookstore restore failed: {restored.stderr}")
    served = Processes(prefix="bookstore-drill-restored-", database_url=f"sqlite://{target}")
    try:
        started = time.monotonic()
        served.start_backend("--demo-data", "false")
        ready_seconds = time.monotonic() - started
        _, headers, _ = http("GET", f"{served.url('backend')}/books?limit=1")
        served_books = int(headers["X-Total-Count"])
    finally:
        served.down()
    log(f"backup of {len(saved):,} books in {backup_seconds:.2f} s under load; restored in {restore_seconds:.2f} s")
    return {
        "books": len(saved),
        "bytes": copy.stat().st_size,
        "acknowledged_before": len(before),
        "acknowledged_during": len(acknowledged) - len(before),
        "missing": len(before - saved),
        "backup_seconds": round(backup_seconds, 3),
        "restore_seconds": round(restore_seconds, 3),
        "restored_ready_seconds": round(ready_seconds, 3),
        "restored_books_served": served_books,
    }


def replica_loss(settings: dict) -> dict:
    """Three replicas on a throwaway PostgreSQL behind nginx, under a read and write load
    through nginx (testkit.replica_loss): one is killed with SIGKILL, and started again (as a
    supervisor would) once the missing-replica alert is pending. Measures what clients saw,
    when Prometheus and the alert noticed, and whether any acknowledged write was lost."""
    from testkit.postgres import Postgres
    from testkit.replica_loss import replica_loss as under_load

    server = Postgres().init().start()
    stack = Processes(prefix="bookstore-drill-replicas-", replicas=3, database_url=server.create_database("drill"))
    start = lambda replica: stack.start_backend("--replicas-expected", "3", replica=replica)  # noqa: E731

    class View:  # what prometheus_query needs
        prometheus_url = stack.url("prometheus")
        monitoring_headers: dict = {}

    def up_replicas() -> int:
        result = prometheus_query(View(), 'count(up{job="bookstore"} == 1)')
        return int(float(result[0]["value"][1])) if result else 0

    def missing_state() -> str | None:
        _, _, body = http("GET", f"{stack.url('prometheus')}/api/v1/alerts")
        states = [a["state"] for a in json.loads(body or b'{"data":{"alerts":[]}}')["data"]["alerts"]
                  if a["labels"]["alertname"] == "BookstoreReplicasMissing"]
        return states[0] if states else None

    seen: dict[str, float] = {}
    result: dict = {}

    def kill() -> None:
        seen["t0"] = time.time()
        stack.stop(stack.backend_name(1), signal.SIGKILL)

    def while_down() -> None:
        # Down for at least 10 s, and until the alert has had a scrape and an evaluation to
        # notice (at most 30 s).
        t0, limit = seen["t0"], settings["scrape_interval"] + settings["evaluation_interval"] + 15
        while time.time() - t0 < limit and (time.time() - t0 < 10 or "alert_pending" not in seen):
            if "prometheus_two_up" not in seen and up_replicas() == 2:
                seen["prometheus_two_up"] = time.time() - t0
            if "alert_pending" not in seen and missing_state() in ("pending", "firing"):
                seen["alert_pending"] = time.time() - t0
            time.sleep(0.1)

    def restart() -> None:
        t1 = time.time()
        start(1)
        result["replica_ready_after_start"] = round(time.time() - t1, 2)

    def once_back() -> None:
        wait_until(lambda: up_replicas() == 3, 30, "Prometheus to scrape three replicas again")
        seen["prometheus_three_up_again"] = time.time() - seen["t0"]

    try:
        for replica in range(3):
            start(replica)
        stack.start_alertmanager()
        stack.start_prometheus()
        stack.start_nginx()
        wait_until(lambda: up_replicas() == 3, 60, "Prometheus to scrape three replicas")
        log("replica loss: three replicas behind nginx under load; SIGKILL to one")
        loss = under_load(stack.url("nginx"), kill, restart, while_down, once_back, marker="Replica drill")
        seen.pop("t0")
        result.update({k: round(v, 2) for k, v in seen.items()})
        result.update({k: v for k, v in loss.items() if k != "failures"})
        result["scrape_interval"] = settings["scrape_interval"]
    finally:
        stack.down()
        server.destroy()
    return result


def evaluate(results: dict, settings: dict) -> list[dict]:
    d, r, k, c = results["detection"], results["recovery"], results["kills"], results["contained"]
    n = results["notifications"]
    exact = results["prometheus_timestamps"]
    checks = [
        ("Prometheus shows the backend down within one scrape interval plus 5 s",
         d.get("prometheus_down"), settings["scrape_interval"] + 5),
        # A failed scrape is timestamped when it starts but written when it fails: a stopped
        # container's address does not refuse, so that is when its scrape times out.
        ("the alert fires within its for: plus one evaluation interval and the scrape timeout (Prometheus' own "
         "timestamps, from the failed scrape to the firing evaluation)",
         exact["down_to_firing"], settings["alert_for"] + settings["evaluation_interval"] + settings["scrape_timeout"]),
        ("Alertmanager has received the alert", d.get("alertmanager"), None),
        ("the UI's banner appears within 5 s", d.get("banner_shown"), 5),
        ("the UI's banner clears, once the backend is ready, within nginx's DNS refresh plus the UI's health "
         "poll plus 1 s", r["banner_cleared_after_ready"],
         settings["nginx_resolver_valid"] + settings["ui_health_poll"] + 1),
    ]
    out = [{"target": name, "measured": value, "limit": limit,
            "met": value is not None and (limit is None or value <= limit)} for name, value, limit in checks]
    out += [
        {"target": "the BookstoreBackendDown notification reached the receiver within 5 s of firing, with its "
                   "summary, description and runbook", "measured": n["firing_after_stop"],
         "limit": round((d.get("alert_firing") or 0) + 5, 2),
         "met": bool(n["firing_annotations"]) and d.get("alert_firing") is not None
         and n["firing_after_stop"] is not None and n["firing_after_stop"] <= d["alert_firing"] + 5},
        {"target": "its resolved notification arrived within Alertmanager's group interval (60 s) plus 10 s of the "
                   "alert resolving", "measured": n["resolved_after_alert_resolved"],
         "limit": 70, "met": n["resolved_after_alert_resolved"] is not None and n["resolved_after_alert_resolved"] <= 70},
        {"target": "the UI page still loads", "measured": c["ui_page_loads"], "limit": True, "met": c["ui_page_loads"]},
        {"target": "nginx answers API calls with a problem+json 502/503", "measured": c["api_answers_problem_502_503"],
         "limit": True, "met": c["api_answers_problem_502_503"]},
        {"target": "no other service restarts", "measured": c["other_services_unchanged"], "limit": True,
         "met": all(c["other_services_unchanged"].values())},
        {"target": f"zero acknowledged writes lost across {k['rounds']} SIGKILLs", "measured": k["lost"], "limit": 0,
         "met": k["lost"] == 0},
        {"target": "PRAGMA integrity_check is ok", "measured": k["integrity_check"], "limit": "ok",
         "met": k["integrity_check"] == "ok"},
        {"target": "the page recovered without a reload", "measured": results["same_page"], "limit": True,
         "met": results["same_page"] is True},
    ]
    backup = results.get("backup")
    if backup:
        out += [
            {"target": "backup under load: every book acknowledged before it began is in it",
             "measured": backup["missing"], "limit": 0, "met": backup["missing"] == 0},
            {"target": "restore: the restored server serves exactly the backup's books",
             "measured": backup["restored_books_served"], "limit": backup["books"],
             "met": backup["restored_books_served"] == backup["books"]},
        ]
    loss = results.get("replica_loss")
    if loss:
        out += [
            {"target": "replica loss: zero failed reads through nginx", "measured": loss["failed_reads"], "limit": 0,
             "met": loss["failed_reads"] == 0},
            {"target": "replica loss: no acknowledged write lost", "measured": loss["lost_writes"], "limit": 0,
             "met": loss["lost_writes"] == 0},
            {"target": "replica loss: Prometheus sees two replicas up within one scrape interval plus 5 s",
             "measured": loss.get("prometheus_two_up"), "limit": settings["scrape_interval"] + 5,
             "met": loss.get("prometheus_two_up") is not None
             and loss["prometheus_two_up"] <= settings["scrape_interval"] + 5},
            {"target": "replica loss: BookstoreReplicasMissing pending within a scrape and an evaluation interval "
                       "plus 5 s", "measured": loss.get("alert_pending"),
             "limit": settings["scrape_interval"] + settings["evaluation_interval"] + 5,
             "met": loss.get("alert_pending") is not None
             and loss["alert_pending"] <= settings["scrape_interval"] + settings["evaluation_interval"] + 5},
        ]
    return out


def report(results: dict) -> str:
    d, r, k = results["detection"], results["recovery"], results["kills"]
    lines = [f"# Failure drill ({results['mode']}), {results['date']}", "",
             f"Books before: {results['books_before']}; after: {results['books_after']}. "
             f"Settings: scrape every {results['settings']['scrape_interval']:.0f} s, rules evaluated every "
             f"{results['settings']['evaluation_interval']:.0f} s, BookstoreBackendDown `for: "
             f"{results['settings']['alert_for']:.0f}s`.", "",
             "| event | seconds after the backend stopped |", "|---|--:|"]
    for key, label in [("banner_shown", "UI shows 'unavailable' banner"), ("prometheus_down", "Prometheus: target down"),
                       ("alert_pending", "BookstoreBackendDown pending"), ("alert_firing", "BookstoreBackendDown firing"),
                       ("alertmanager", "Alertmanager has the alert")]:
        lines.append(f"| {label} | {d.get(key, 'never')} |")
    exact = results["prometheus_timestamps"]
    lines += ["", f"By Prometheus' own timestamps: the failed scrape at {exact['target_down']} s, the firing "
              f"evaluation at {exact['alert_firing']} s ({exact['down_to_firing']} s apart).",
              "", "| recovery | seconds |", "|---|--:|",
              f"| start-up to ready | {r['ready']} |",
              f"| ready to banner cleared (no page reload) | {r['banner_cleared_after_ready']} |",
              f"| ready to alert resolved | {r['alert_resolved_after_ready']} |", "",
              f"Notifications (Alertmanager to the alert-log webhook receiver): BookstoreBackendDown firing arrived "
              f"{results['notifications']['firing_after_stop']} s after the backend stopped, with its summary, "
              f"description and runbook link: {results['notifications']['firing_annotations']}; resolved arrived "
              f"{results['notifications']['resolved_after_alert_resolved']} s after the alert resolved.", "",
              f"SIGKILL under a write load: {k['rounds']} kills, {k['acknowledged_writes']} writes acknowledged "
              f"with 201, **{k['lost']} lost**; integrity check: **{k['integrity_check']}**.", "",
              ]
    backup = results.get("backup")
    if backup:
        lines += [f"Backup and restore: `bookstore backup` copied {backup['books']:,} books ({backup['bytes']:,} bytes) "
                  f"in {backup['backup_seconds']} s while 4 writers went on ({backup['acknowledged_during']:,} more "
                  f"writes acknowledged meanwhile); **{backup['missing']}** of the {backup['acknowledged_before']:,} "
                  f"acknowledged before it began were missing. `bookstore restore` put it in a new place in "
                  f"{backup['restore_seconds']} s; a server on it was ready in {backup['restored_ready_seconds']} s "
                  f"and served {backup['restored_books_served']:,} books.", ""]
    loss = results.get("replica_loss")
    if loss:
        lines += [f"Replica loss (three replicas on PostgreSQL behind nginx, 4 readers and 2 writers through nginx, "
                  f"one replica SIGKILLed, started again once the alert was pending): **{loss['failed_reads']}** of {loss['reads']:,} "
                  f"reads failed; {loss['failed_writes']} of {loss['writes']:,} writes were answered with an error "
                  f"(in flight on the killed replica: never retried elsewhere), and **{loss['lost_writes']}** of "
                  f"{loss['acknowledged_writes']:,} acknowledged writes were lost. Prometheus saw two replicas up "
                  f"{loss.get('prometheus_two_up')} s after the kill, BookstoreReplicasMissing was pending at "
                  f"{loss.get('alert_pending')} s, and three replicas were up again at "
                  f"{loss.get('prometheus_three_up_again'):.2f} s (the replica was ready "
                  f"{loss['replica_ready_after_start']} s after its start).", ""]
    lines += ["| target | measured | limit | met |", "|---|---|---|:-:|"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {t['limit'] if t['limit'] is not None else ''} | "
                     f"{'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--native", action="store_true", help="start the stack from the binaries")
    parser.add_argument("--project", default="bookstore", help="compose project name (compose mode)")
    parser.add_argument("--file", action="append", default=[], help="compose file(s) (compose mode)")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs under write load")
    parser.add_argument("--load-seconds", type=float, default=1.0, help="write load before each SIGKILL")
    parser.add_argument("--replicas", action="store_true",
                        help="also the replica-loss scenario (native: three replicas on a throwaway PostgreSQL)")
    args = parser.parse_args()

    mode = "native" if args.native else "compose"
    stack = NativeStack() if args.native else ComposeStack(args.project, args.file or [str(ROOT / "docker-compose.yml")])
    settings = monitoring_settings()
    results: dict = {"mode": mode, "settings": settings,
                     "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    watch = None
    try:
        stack.up()
        log("checking that the stack is healthy")
        wait_until(lambda: http("GET", f"{stack.ui_url}/readyz")[0] == 200, 60, "the UI's /readyz")
        if args.native:
            for i in range(12):
                http("POST", f"{stack.backend_url}/books", {"title": f"Before {i}", "author": "Drill", "year": 1999})
        wait_until(lambda: prometheus_query(stack, 'up{job="bookstore"} == 1'), 60, "Prometheus to scrape the backend")
        wait_until(lambda: alert_state(stack) is None, 120, "no alert to be active")
        results["books_before"] = book_count(stack)
        watch = BannerWatch(stack.ui_url)
        notified = outage(stack, watch, results)
        results["same_page"] = watch.close()
        watch = None
        # While Alertmanager holds the resolved notice until the group's next interval: each
        # kill's outage is over well within the alert's `for:`, so none of them fires.
        kills_under_load(stack, args.kills, args.load_seconds, results)
        log("waiting for the resolved notification")
        notified()
        results["books_after"] = book_count(stack)
        if args.native:
            log("backup and restore, rehearsed under a write load")
            results["backup"] = backup_rehearsal(stack)
    finally:
        if watch:
            watch.process.kill()
        stack.down()
    if args.replicas:
        results["replica_loss"] = replica_loss(settings)

    results["targets"] = evaluate(results, settings)
    out = ROOT / "artifacts" / "drill"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{mode}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{mode}.md").write_text(report(results))
    print(report(results))
    log(f"wrote artifacts/drill/{mode}.json and artifacts/drill/{mode}.md")
    return 0 if all(t["met"] for t in results["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
