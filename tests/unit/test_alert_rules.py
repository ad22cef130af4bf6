"""The alert rules: promtool checks the generated rule file and runs its unit tests
(tests/unit/promtool/alerts_test.yml, synthetic series for every alert); thresholds come from the
settings; every alert has a runbook section and the generated docs are current."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring import alerts, docs
from monitoring.settings import MonitoringSettings
from streams.core.config import ConfigError

HERE = Path(__file__).resolve().parent
PROMTOOL_TESTS = HERE / "promtool" / "alerts_test.yml"


def _promtool() -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: it comes with Debian's prometheus package (scripts/setup.sh)"
    return promtool


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    alerts.write(tmp_path / "alerts.rules.yml", MonitoringSettings())
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    return tmp_path


def test_promtool_accepts_the_generated_rules(rules_dir: Path) -> None:
    result = subprocess.run([_promtool(), "check", "rules", "alerts.rules.yml"], cwd=rules_dir,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_of_every_rule_pass(rules_dir: Path) -> None:
    result = subprocess.run([_promtool(), "test", "rules", PROMTOOL_TESTS.name], cwd=rules_dir,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_in_some_promtool_test() -> None:
    tested = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    firing = {case["alertname"] for test in tested for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert firing == {a.name for a in alerts.ALERTS}


def test_thresholds_and_durations_come_from_the_settings() -> None:
    s = MonitoringSettings.from_env({"NOTIPIPE_ALERT_LAG_SECONDS": "7.5", "NOTIPIPE_ALERT_FOR_S": "4",
                                     "NOTIPIPE_ALERT_FAST_FOR_S": "2", "NOTIPIPE_ALERT_WINDOW_S": "6",
                                     "NOTIPIPE_ALERT_ROUTER_GROUPS": "it1234router",
                                     "NOTIPIPE_EVALUATION_INTERVAL_S": "1"})
    group = yaml.safe_load(alerts.render(s))["groups"][0]
    rules = {r["alert"]: r for r in group["rules"]}
    assert group["interval"] == "1s"
    assert rules["NotipipeConsumerLagHigh"]["expr"].endswith("> 7.5")
    assert rules["NotipipeConsumerLagHigh"]["for"] == "4s"
    assert rules["NotipipeWorkerDown"]["for"] == "2s"
    assert "[6s:]" in rules["NotipipeConsumerStalled"]["expr"]
    assert 'group=~"it1234router"' in rules["NotipipeRouterGroupEmpty"]["expr"]


def test_the_router_group_defaults_to_the_app_id() -> None:
    assert MonitoringSettings.from_env({}).router_groups_regex == "notipipe-router"
    named = MonitoringSettings.from_env({"NOTIPIPE_APP_ID": "team.router"})
    assert named.router_groups_regex == r"team\.router"


@pytest.mark.parametrize(("env", "message"), [
    ({"NOTIPIPE_ALERT_LAG_SECONDS": "soon"}, "NOTIPIPE_ALERT_LAG_SECONDS='soon' is invalid: expected "
     "seconds"),
    ({"NOTIPIPE_ALERT_WINDOW_S": "0"}, "NOTIPIPE_ALERT_WINDOW_S='0' is invalid: expected a whole "
     "number between 1"),
    ({"NOTIPIPE_ALERT_SINK_GROUPS": "c-(("}, "NOTIPIPE_ALERT_SINK_GROUPS='c-((' is invalid: expected "
     "a regular"),
    ({"NOTIPIPE_LAG_TIME_MODE": "exact"}, "expected rate or message"),
    ({"NOTIPIPE_LAG_EXPORTER_KAFKA_CONFIG": "security.protocol"}, "'security.protocol' is not"),
])
def test_bad_settings_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        MonitoringSettings.from_env(env)


def test_every_alert_has_a_runbook_section() -> None:
    page = docs.PAGE.read_text()
    headings = set(re.findall(r"^### (\w+)$", page, re.M))
    missing = {a.name for a in alerts.ALERTS} - headings
    assert not missing, f"docs/operations.md lacks runbooks for {sorted(missing)}"
    for alert in alerts.ALERTS:
        section = page.split(f"### {alert.name}\n", 1)[1].split("\n### ", 1)[0]
        assert "First checks:" in section and "Recovery:" in section, alert.name
        assert len(re.findall(r"^\d\. ", section, re.M)) >= 3, f"{alert.name}: three first checks"


def test_the_generated_tables_in_the_docs_are_current() -> None:
    page = docs.PAGE.read_text()
    assert docs.render(page) == page, "docs/operations.md is stale: run `python -m monitoring.docs`"
