"""docs/grafana/: the sample Grafana dashboard and the Prometheus alert rules name only metrics a real
photoslot exposes (read from its own GET /metrics after a shot), and `promtool check rules` accepts
the rules (promtool comes with Debian's `prometheus` package; installed here when apt can, else the
check is skipped with one line)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

GRAFANA = ROOT / "docs" / "grafana"
NAME = re.compile(r"\bphotoslot_[a-z0-9_]+\b")
# Prometheus' own series a rule may use besides photoslot's
PROMETHEUS_OWN = {"up"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",), "unknown": ("",), "summary": ("", "_count", "_sum", "_created")}


def expressions() -> dict[str, list[str]]:
    dashboard = json.loads((GRAFANA / "photoslot-dashboard.json").read_text(encoding="utf-8"))
    rules = yaml.safe_load((GRAFANA / "photoslot-alerts.yml").read_text(encoding="utf-8"))
    return {
        "dashboard": [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])],
        "rules": [r["expr"] for g in rules["groups"] for r in g["rules"]],
    }


async def exposed_names(make_cfg, pg_dsn, photo_bytes) -> set[str]:
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200  # the labelled families get samples
        async with s.http.get(f"{s.base_url}/metrics") as r:
            assert r.status == 200
            text = await r.text()
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


async def test_the_dashboard_and_the_rules_name_only_metrics_photoslot_exposes(make_cfg, pg_dsn, photo_bytes):
    exposed = await exposed_names(make_cfg, pg_dsn, photo_bytes)
    assert {"photoslot_ingest_answers_total", "photoslot_database_up"} <= exposed  # the scrape itself worked
    for where, exprs in expressions().items():
        assert exprs, f"no expressions in the {where}"
        unknown = sorted({n for e in exprs for n in NAME.findall(e)} - exposed)
        assert unknown == [], f"the {where} names metrics photoslot does not expose: {unknown}"
    # every rule uses a photoslot metric or Prometheus' own `up`, nothing else unknown
    for expr in expressions()["rules"]:
        assert NAME.search(expr) or set(re.findall(r"\b[a-z_]+(?=\{)", expr)) <= PROMETHEUS_OWN, expr


def promtool() -> str | None:
    if shutil.which("promtool") is None and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "prometheus"],
                       capture_output=True, timeout=300)
    return shutil.which("promtool")


def test_promtool_accepts_the_alert_rules():
    tool = promtool()
    if tool is None:
        pytest.skip("promtool not installed and not installable here (Debian package `prometheus`): rules not checked")
    r = subprocess.run([tool, "check", "rules", str(GRAFANA / "photoslot-alerts.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
