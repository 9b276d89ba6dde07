"""The alert rules and the dashboard's queries against Debian's real promtool and Prometheus (no data needed:
seconds). tests/test_monitoring_e2e.py checks them on the metrics of a real run."""
import subprocess
import sys
import time

import yaml

from tests.prometheus_servers import (DASHBOARD_FILE, REPO, RULE_TEST_FILES, RULES_FILE, api, dashboard_panels,
                                      grafana_expression, instant_query, prometheus, promtool)


def alert_names():
    return {rule["alert"] for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for rule in group["rules"]
            if "alert" in rule}


def alert_tests():
    return [case for path in RULE_TEST_FILES for group in yaml.safe_load(path.read_text())["tests"]
            for case in group["alert_rule_test"]]


def test_promtool_check_rules_accepts_the_rules_file():
    result = promtool("check", "rules", RULES_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_promtool_unit_tests_of_every_alert_pass():
    result = promtool("test", "rules", *(path.name for path in RULE_TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_quiet():
    """promtool compares the full set of firing alerts at each eval_time, so a case that expects one pipeline
    also proves the others in its series quiet; every alert needs a case where it fires."""
    firing = {case["alertname"] for case in alert_tests() if case["exp_alerts"]}
    assert firing == alert_names()


def test_rendered_kubernetes_manifests_match_their_sources():
    result = subprocess.run([sys.executable, "tools/render_monitoring_manifests.py", "--check"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_prometheus_loads_the_rules_and_evaluates_each_without_error(tmp_path):
    with prometheus(tmp_path / "prometheus", rule_files=[RULES_FILE]) as url:
        deadline = time.monotonic() + 30
        while True:
            rules = [rule for group in api(url, "/api/v1/rules")["groups"] for rule in group["rules"]]
            if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules):
                break
            assert time.monotonic() < deadline, "rules never evaluated"
            time.sleep(0.5)
    assert {rule["name"] for rule in rules} == alert_names()
    assert {rule["name"]: rule["health"] for rule in rules} == dict.fromkeys(alert_names(), "ok")


def test_every_dashboard_query_is_accepted_by_prometheus(tmp_path):
    panels = dashboard_panels()
    assert all(panel["targets"] for panel in panels)
    with prometheus(tmp_path / "prometheus") as url:
        for panel in panels:
            for target in panel["targets"]:
                instant_query(url, grafana_expression(target["expr"], "4s"))  # Raises on a parse error.


def test_dashboard_panels_use_the_dashboard_datasource_variable():
    import json

    dashboard = json.loads(DASHBOARD_FILE.read_text())
    assert [variable["name"] for variable in dashboard["templating"]["list"]][0] == "datasource"
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
