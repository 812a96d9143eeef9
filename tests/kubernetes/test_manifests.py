"""The Kubernetes deployment (deploy/kubernetes), checked offline: no cluster can run on this
machine (docs/kubernetes.md says what that leaves untested). Every overlay, alone and with
the optional components, is built with `kubectl kustomize`; every object is validated
strictly against the schemas of the oldest and newest Kubernetes this project supports;
checkov passes; and the settings the deployment promises are read back from what it renders,
so that a regression fails by name.

Run by `scripts/test.sh kubernetes`, with the kubernetes virtualenv's python (PyYAML,
kubernetes-validate, checkov) and kubectl, promtool on PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BIN = Path(sys.executable).parent

# The oldest and the newest Kubernetes minor the manifests are validated against.
VERSIONS = ["1.30.0", "1.37.0"]
# Kinds that no Kubernetes schema knows (the operators' own): checked by hand below.
CUSTOM_KINDS = {"Cluster", "PrometheusRule", "ServiceMonitor"}

# What gets built: the two overlays, and each with the optional components it takes.
BUILDS = {
    "sqlite": ("overlays/sqlite", []),
    "postgres": ("overlays/postgres", []),
    "sqlite+prometheus-operator": ("overlays/sqlite", ["components/prometheus-operator"]),
    "postgres+cloudnative-pg+prometheus-operator": (
        "overlays/postgres", ["components/cloudnative-pg", "components/prometheus-operator"]),
}
CLUSTER_SCOPED = {"Namespace"}


def kustomize(directory: Path) -> str:
    return subprocess.run(["kubectl", "kustomize", str(directory)], check=True, capture_output=True,
                          text=True).stdout


def build(overlay: str, components: list[str]) -> str:
    """The rendered YAML of an overlay with components added, as a user's own overlay adds
    them (a kustomization naming the overlay and the components, and the namespace)."""
    if not components:
        return kustomize(KUBERNETES / overlay)
    with tempfile.TemporaryDirectory() as scratch:
        def rel(path: str) -> str:
            return os.path.relpath(KUBERNETES / path, scratch)
        Path(scratch, "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "namespace": "bookstore", "resources": [rel(overlay)],
            "components": [rel(c) for c in components]}))
        return kustomize(Path(scratch))


class Rendered:
    def __init__(self, text: str):
        self.text = text
        self.objects = [o for o in yaml.safe_load_all(text) if o]

    def of(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str) -> dict:
        found = [o for o in self.of(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} named {name}"
        return found[0]

    def workloads(self) -> list[dict]:
        return [o for o in self.objects if o["kind"] in ("Deployment", "StatefulSet")]

    def backend(self) -> dict:
        found = [w for w in self.workloads() if w["metadata"]["name"] == "backend"]
        assert len(found) == 1, f"{len(found)} backend workloads"
        return found[0]


def container(workload: dict) -> dict:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, [c["name"] for c in containers]
    return containers[0]


def env(workload: dict, settings: dict[str, str]) -> dict[str, str]:
    """The backend's environment: its ConfigMap's (envFrom) and its own."""
    c = container(workload)
    values = {}
    for source in c.get("envFrom", []):
        values |= settings[source["configMapRef"]["name"]]
    values |= {e["name"]: e.get("value") for e in c.get("env", [])}
    return values


class Manifests(unittest.TestCase):
    builds: dict[str, Rendered] = {}

    @classmethod
    def setUpClass(cls):
        for name, (overlay, components) in BUILDS.items():
            cls.builds[name] = Rendered(build(overlay, components))

    def each(self):
        for name, rendered in self.builds.items():
            with self.subTest(build=name):
                try:
                    yield name, rendered
                except GeneratorExit:  # the loop's body failed: the failure is reported already
                    return

    def settings(self, rendered: Rendered) -> dict[str, dict[str, str]]:
        return {o["metadata"]["name"]: o.get("data", {}) for o in rendered.of("ConfigMap")}

    # --- validity -------------------------------------------------------------------------

    def test_every_object_validates_strictly_against_the_oldest_and_newest_kubernetes(self):
        for name, rendered in self.each():
            with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
                file.write(rendered.text)
                file.flush()
                for version in VERSIONS:
                    run = subprocess.run([BIN / "kubernetes-validate", "--strict", "-k", version, file.name],
                                         capture_output=True, text=True)
                    self.assertEqual(run.returncode, 0, f"{version}:\n{run.stdout}{run.stderr}")
                    unknown = set(re.findall(r"Couldn't find schema for kind (\w+)", run.stdout + run.stderr))
                    self.assertLessEqual(unknown, CUSTOM_KINDS, f"{version}: kinds without a schema")

    def test_checkov_passes_and_every_skip_says_why(self):
        for name, rendered in self.each():
            with tempfile.TemporaryDirectory() as scratch:
                Path(scratch, "rendered.yaml").write_text(rendered.text)
                run = subprocess.run([BIN / "checkov", "-d", scratch, "--framework", "kubernetes", "--quiet",
                                      "--compact", "--skip-download", "--output", "json"],
                                     capture_output=True, text=True)
                self.assertEqual(run.returncode, 0, run.stdout[-3000:] + run.stderr[-3000:])
            for o in rendered.objects:
                for key, value in o["metadata"].get("annotations", {}).items():
                    if key.startswith("checkov.io/skip"):
                        check, _, reason = value.partition("=")
                        self.assertRegex(check, r"^CKV_K8S_\d+$")
                        self.assertGreater(len(reason.split()), 5, f"{key} on {o['kind']} gives no reason")

    def test_everything_lives_in_the_bookstore_namespace_under_restricted_pod_security(self):
        for name, rendered in self.each():
            for o in rendered.objects:
                if o["kind"] not in CLUSTER_SCOPED:
                    self.assertEqual(o["metadata"].get("namespace"), "bookstore", f"{o['kind']} {o['metadata']['name']}")
            labels = rendered.one("Namespace", "bookstore")["metadata"]["labels"]
            self.assertEqual(labels["pod-security.kubernetes.io/enforce"], "restricted")

    # --- every pod ------------------------------------------------------------------------

    def test_every_pod_is_locked_down(self):
        for name, rendered in self.each():
            for w in rendered.workloads():
                pod = w["spec"]["template"]["spec"]
                what = f"{w['kind']} {w['metadata']['name']}"
                self.assertIs(pod["automountServiceAccountToken"], False, what)
                self.assertIs(pod["securityContext"]["runAsNonRoot"], True, what)
                self.assertGreater(pod["securityContext"]["runAsUser"], 0, what)
                self.assertEqual(pod["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"}, what)
                for c in pod["containers"]:
                    security = c["securityContext"]
                    self.assertIs(security["readOnlyRootFilesystem"], True, what)
                    self.assertIs(security["allowPrivilegeEscalation"], False, what)
                    self.assertEqual(security["capabilities"], {"drop": ["ALL"]}, what)
                    self.assertNotIn("privileged", security, what)

    def test_every_container_has_probes_requests_and_limits(self):
        for name, rendered in self.each():
            for w in rendered.workloads():
                c = container(w)
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    self.assertIn(probe, c, f"{w['metadata']['name']} {probe}")
                for side in ("requests", "limits"):
                    self.assertEqual(set(c["resources"][side]), {"cpu", "memory"}, f"{w['metadata']['name']} {side}")
            backend = container(rendered.backend())
            self.assertEqual(backend["livenessProbe"]["httpGet"]["path"], "/healthz")
            self.assertEqual(backend["readinessProbe"]["httpGet"]["path"], "/readyz")
            self.assertEqual(backend["startupProbe"]["httpGet"]["path"], "/healthz")
            startup = backend["startupProbe"]
            self.assertGreaterEqual(startup["periodSeconds"] * startup["failureThreshold"], 120,
                                    "a large database's first start (indexes built) must fit in the startup probe")
            # A stopping pod serves on, not ready, while the endpoints catch up, then drains:
            # Kubernetes must not kill it before both are over.
            values = env(rendered.backend(), self.settings(rendered))
            delay = int(values["BOOKSTORE_SHUTDOWN_DELAY"].removesuffix("s"))
            drain = int(values.get("BOOKSTORE_SHUTDOWN_TIMEOUT", "10s").removesuffix("s"))
            self.assertGreaterEqual(delay, 5)
            self.assertGreater(rendered.backend()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
                               delay + drain)

    def test_images_are_named_by_the_overlay_in_one_place(self):
        for name, rendered in self.each():
            for w in rendered.workloads():
                image = container(w)["image"]
                self.assertTrue(image.startswith("registry.example.com/bookstore/"), image)
                self.assertRegex(image, r"(:[\w.-]+|@sha256:[0-9a-f]{64})$")
        for overlay in ("sqlite", "postgres"):
            text = (KUBERNETES / "overlays" / overlay / "kustomization.yaml").read_text()
            self.assertEqual(text.count("newName:"), 2, overlay)

    def test_no_secret_is_written_in_the_manifests(self):
        for name, rendered in self.each():
            self.assertEqual(rendered.of("Secret"), [], "Secrets are made by the user or an operator")
            for settings in self.settings(rendered).values():
                for key, value in settings.items():
                    self.assertNotRegex(f"{key}={value}", r"(?i)password|token=|postgres(ql)?://", key)
            backend = env(rendered.backend(), self.settings(rendered))
            self.assertNotIn("BOOKSTORE_ADMIN_TOKEN", backend)
            self.assertEqual(backend["BOOKSTORE_ADMIN_TOKEN_FILE"], "/run/bookstore-secrets/admin-token/admin-token")
            volumes = {v["name"]: v for v in rendered.backend()["spec"]["template"]["spec"]["volumes"]}
            self.assertEqual(volumes["admin-token"]["secret"]["secretName"], "bookstore-admin-token")

    # --- the two overlays -----------------------------------------------------------------

    def test_sqlite_is_one_writer_with_its_data_and_backups_on_volumes_of_their_own(self):
        for name in ("sqlite", "sqlite+prometheus-operator"):
            rendered = self.builds[name]
            backend = rendered.backend()
            self.assertEqual(backend["kind"], "StatefulSet")
            self.assertEqual(backend["spec"]["replicas"], 1)
            self.assertEqual(rendered.of("HorizontalPodAutoscaler"), [])
            claims = {t["metadata"]["name"] for t in backend["spec"]["volumeClaimTemplates"]}
            self.assertEqual(claims, {"data", "backups"})
            mounts = {m["name"]: m["mountPath"] for m in container(backend)["volumeMounts"]}
            values = env(backend, self.settings(rendered))
            self.assertEqual(mounts["data"], "/data")
            self.assertTrue(values["DATABASE_URL"].startswith("sqlite:///data/"))
            self.assertEqual(mounts["backups"], values["BOOKSTORE_BACKUP_DIR"])

    def test_postgres_scales_rolls_without_losing_capacity_and_reads_its_url_from_a_secret(self):
        for name in ("postgres", "postgres+cloudnative-pg+prometheus-operator"):
            rendered = self.builds[name]
            backend = rendered.backend()
            self.assertEqual(backend["kind"], "Deployment")
            self.assertGreaterEqual(backend["spec"]["replicas"], 2)
            self.assertEqual(backend["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
            spread = backend["spec"]["template"]["spec"]["topologySpreadConstraints"]
            self.assertIn("kubernetes.io/hostname", {s["topologyKey"] for s in spread})
            hpa = rendered.one("HorizontalPodAutoscaler", "backend")
            self.assertEqual(hpa["spec"]["scaleTargetRef"], {"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend"})
            self.assertEqual(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu")
            self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)
            pdb = rendered.one("PodDisruptionBudget", "backend")
            self.assertEqual(pdb["spec"]["selector"]["matchLabels"], backend["spec"]["selector"]["matchLabels"])
            values = env(backend, self.settings(rendered))
            self.assertNotIn("DATABASE_URL", values)
            self.assertEqual(values["DATABASE_URL_FILE"], "/run/bookstore-secrets/database/url")
            volumes = {v["name"]: v for v in backend["spec"]["template"]["spec"]["volumes"]}
            secret = volumes["database"]["secret"]
            if "cloudnative-pg" in name:
                self.assertEqual(secret["secretName"], "bookstore-db-app")
                self.assertEqual(secret["items"], [{"key": "uri", "path": "url"}])
                cluster = rendered.one("Cluster", "bookstore-db")
                self.assertEqual(cluster["spec"]["bootstrap"]["initdb"], {"database": "bookstore", "owner": "bookstore"})
                self.assertGreaterEqual(cluster["spec"]["instances"], 2)
            else:
                self.assertEqual(secret["secretName"], "bookstore-database")
                self.assertEqual(rendered.of("Cluster"), [])

    # --- the network ----------------------------------------------------------------------

    def policy(self, rendered: Rendered, name: str) -> dict:
        return rendered.one("NetworkPolicy", name)["spec"]

    def test_network_policies_deny_by_default_and_allow_only_the_request_path(self):
        backend = {"app.kubernetes.io/name": "bookstore", "app.kubernetes.io/component": "backend"}
        frontend = {"app.kubernetes.io/name": "bookstore", "app.kubernetes.io/component": "frontend"}
        for name, rendered in self.each():
            deny = self.policy(rendered, "default-deny")
            self.assertEqual(deny["podSelector"], {})
            self.assertEqual(set(deny["policyTypes"]), {"Ingress", "Egress"})
            self.assertNotIn("ingress", deny)
            self.assertNotIn("egress", deny)
            # Who may reach each pod: nothing else is allowed in (default deny).
            into: dict[str, list] = {}
            for policy in rendered.of("NetworkPolicy"):
                spec = policy["spec"]
                for rule in spec.get("ingress", []):
                    key = json.dumps(spec["podSelector"], sort_keys=True)
                    into.setdefault(key, []).append(rule)
            self.assertEqual(into.pop(json.dumps({"matchLabels": frontend}, sort_keys=True)), [
                {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
                 "ports": [{"protocol": "TCP", "port": 8080}]}])
            self.assertEqual(into.pop(json.dumps({"matchLabels": backend}, sort_keys=True)), [
                {"from": [{"podSelector": {"matchLabels": frontend}}], "ports": [{"protocol": "TCP", "port": 8000}]},
                {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                           "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
                 "ports": [{"protocol": "TCP", "port": 8000}]}])
            if "cloudnative-pg" in name:
                database = into.pop(json.dumps({"matchLabels": {"cnpg.io/cluster": "bookstore-db"}}, sort_keys=True))
                self.assertEqual(database[0], {"from": [{"podSelector": {"matchLabels": backend}}],
                                               "ports": [{"protocol": "TCP", "port": 5432}]})
            self.assertEqual(into, {}, "no other pod accepts connections")
            # Where the frontend and the backend may connect: DNS, then one hop down the path.
            self.assertEqual(self.policy(rendered, "frontend")["egress"], [
                {"to": [{"podSelector": {"matchLabels": backend}}], "ports": [{"protocol": "TCP", "port": 8000}]}])
            backend_egress = [r for p in rendered.of("NetworkPolicy") for r in p["spec"].get("egress", [])
                              if p["spec"]["podSelector"] == {"matchLabels": backend}]
            if name.startswith("postgres"):
                self.assertEqual(backend_egress, [{"ports": [{"protocol": "TCP", "port": 5432}]}])
            else:
                self.assertEqual(backend_egress, [], "on SQLite the backend connects to nothing but DNS")
            dns = self.policy(rendered, "dns")
            self.assertEqual(dns["podSelector"], {})
            self.assertEqual({p["port"] for r in dns["egress"] for p in r["ports"]}, {53})

    def test_the_ingress_routes_the_ui_and_the_api_to_nginx_and_never_metrics(self):
        for name, rendered in self.each():
            ingress = rendered.one("Ingress", "bookstore")
            paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
            routed = {p["path"] for p in paths}
            self.assertLessEqual({"/", "/books", "/session", "/docs", "/openapi.json"}, routed)
            for p in paths:
                self.assertEqual(p["backend"]["service"]["name"], "frontend", p)
                covers_metrics = p["path"] == "/metrics" or (
                    p["pathType"] == "Prefix" and "/metrics".startswith(p["path"].rstrip("/") + "/"))
                self.assertFalse(covers_metrics, f"{p['path']} ({p['pathType']}) would route /metrics")
            self.assertIn("location = /metrics {\n        return 404;", (ROOT / "frontend/nginx/default.conf").read_text())

    def test_nginx_proxies_to_the_backend_service_through_its_own_upstream_file(self):
        for name, rendered in self.each():
            frontend = rendered.one("Deployment", "frontend")
            mounts = {m["name"]: m for m in container(frontend)["volumeMounts"]}
            self.assertEqual(mounts["upstream"]["mountPath"], "/etc/nginx/conf.d/bookstore-upstream.conf")
            volume = {v["name"]: v for v in frontend["spec"]["template"]["spec"]["volumes"]}["upstream"]
            upstream = self.settings(rendered)[volume["configMap"]["name"]][mounts["upstream"]["subPath"]]
            service = rendered.one("Service", "backend")["spec"]["ports"][0]["port"]
            self.assertRegex(upstream, rf"upstream bookstore_backend {{\s+server backend:{service} ")
            self.assertIn("proxy_pass http://bookstore_backend;", (ROOT / "frontend/nginx/default.conf").read_text())
            self.assertIn("COPY frontend/nginx/default.conf frontend/nginx/bookstore-upstream.conf /etc/nginx/conf.d/",
                          (ROOT / "Dockerfile.frontend").read_text())

    # --- monitoring -----------------------------------------------------------------------

    def test_the_operator_gets_the_projects_own_rules_and_dashboards(self):
        run = subprocess.run([sys.executable, ROOT / "scripts" / "kubernetes-rules.py", "--check"],
                             capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        for name, rendered in self.each():
            if "prometheus-operator" not in name:
                self.assertEqual(rendered.of("PrometheusRule"), [])
                continue
            rules_dir = ROOT / "monitoring" / "prometheus" / "rules"
            for path in sorted(rules_dir.glob("*.yml")):
                rule_name = "bookstore" if path.stem == "bookstore" else f"bookstore-{path.stem}"
                rule = rendered.one("PrometheusRule", rule_name)
                self.assertEqual(rule["spec"], yaml.safe_load(path.read_text()), path.name)
                with tempfile.NamedTemporaryFile("w", suffix=".yml") as file:
                    yaml.safe_dump(rule["spec"], file)
                    file.flush()
                    check = subprocess.run(["promtool", "check", "rules", file.name], capture_output=True, text=True)
                    self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
            monitor = rendered.one("ServiceMonitor", "backend")
            service_labels = rendered.one("Service", "backend")["metadata"]["labels"]
            self.assertLessEqual(monitor["spec"]["selector"]["matchLabels"].items(), service_labels.items())
            endpoint = monitor["spec"]["endpoints"][0]
            self.assertEqual((endpoint["port"], endpoint["path"]), ("http", "/metrics"))
            self.assertIn({"targetLabel": "job", "replacement": "bookstore"}, endpoint["relabelings"])
            dashboards = [c for c in rendered.of("ConfigMap") if c["metadata"].get("labels", {}).get("grafana_dashboard")]
            self.assertEqual(len(dashboards), 1)
            files = {p.name: p.read_text() for p in (ROOT / "monitoring/grafana/dashboards").glob("*.json")}
            self.assertEqual(dashboards[0]["data"], files)

    def test_the_kubernetes_scrape_configuration_is_valid_and_finds_the_backends_pods(self):
        config = yaml.safe_load((ROOT / "monitoring" / "prometheus" / "kubernetes.yml").read_text())
        job = config["scrape_configs"][0]
        self.assertEqual(job["job_name"], "bookstore")
        # Where it looks: the backend's pods, by the labels the workloads give them.
        [discovery] = job["kubernetes_sd_configs"]
        self.assertEqual((discovery["role"], discovery["namespaces"]["names"]), ("pod", ["bookstore"]))
        pod = self.builds["postgres"].backend()["spec"]["template"]["metadata"]
        wanted = dict(pair.split("=") for pair in discovery["selectors"][0]["label"].split(","))
        self.assertLessEqual(wanted.items(), pod["labels"].items())
        self.assertEqual(pod["annotations"]["prometheus.io/scrape"], "true")
        self.assertEqual(pod["annotations"]["prometheus.io/port"], "8000")
        # The rest, relabelling and rules included, checked by promtool. Debian's Prometheus is
        # built without Kubernetes discovery, so a static target stands in for the discovery
        # block in the copy it checks.
        job["static_configs"] = [{"targets": ["backend:8000"]}]
        del job["kubernetes_sd_configs"]
        config["rule_files"] = [str(ROOT / "monitoring/prometheus/rules") + "/*.yml"]
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as file:
            yaml.safe_dump(config, file)
            file.flush()
            check = subprocess.run(["promtool", "check", "config", file.name], capture_output=True, text=True)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)


if __name__ == "__main__":
    if not shutil.which("kubectl") or not shutil.which("promtool"):
        sys.exit("needs kubectl and promtool on PATH (scripts/test.sh kubernetes installs them)")
    unittest.main()
