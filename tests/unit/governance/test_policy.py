"""Policy files (podium.governance.policy.load_policy): what a good one loads
to, and a bad one refused with the field at fault."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from podium.governance.policy import Policy, PolicyError, load_policy

LARGE = "model:simulated/sim-large"


GOOD_FILE = """\
quotas:
  - name: sim-rpm
    scope: provider:simulated
    dimension: requests
    limit: 60
    burst: 5
budgets:
  - name: daily
    scope: server
    limit: "12.50"
    period: day
    time_zone: Europe/Paris
breakers:
  defaults: {failure_threshold: 3, cooldown: 10}
  overrides:
    model:simulated/sim-large: {failure_threshold: 1}
prices:
  - {provider: simulated, model: sim-small, input: 1, output: 2}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_a_policy_file_loads(tmp_path: Path) -> None:
    loaded = load_policy(write(tmp_path, GOOD_FILE))
    [quota] = loaded.quotas
    assert (quota.name, quota.scope, quota.dimension, quota.limit, quota.burst) == (
        "sim-rpm",
        "provider:simulated",
        "requests",
        60,
        5,
    )
    [budget] = loaded.budgets
    assert (budget.limit, budget.period, budget.time_zone) == (
        Decimal("12.50"),
        "day",
        "Europe/Paris",
    )
    assert loaded.breakers.defaults.failure_threshold == 3
    assert loaded.breakers.overrides[LARGE].failure_threshold == 1
    assert loaded.prices[0].input == Decimal(1)
    assert load_policy(write(tmp_path, "")) == Policy()


QUOTA = "  - {name: %s, scope: provider:simulated, dimension: requests, limit: %s}\n"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("quotas:\n" + QUOTA % ("a", "-1"), "quotas[0].limit"),
        ("quotas:\n" + QUOTA % ("a", "1") + QUOTA % ("b", "-5"), "quotas[1].limit"),
        # The prefix of run_concurrency's shared leases in cluster mode.
        ("quotas:\n" + QUOTA % ("'run_concurrency:x'", "1"), "quotas[0].name"),
        (
            "quotas:\n  - {name: a, scope: region:eu, dimension: requests, limit: 1}\n",
            "quotas[0].scope",
        ),
        (
            "quotas:\n  - {name: a, scope: provider:simulated, dimension: calls, limit: 1}\n",
            "quotas[0].dimension",
        ),
        (
            "budgets:\n  - {name: b, scope: server, limit: 1, time_zone: Mars/Olympus}\n",
            "budgets[0].time_zone",
        ),
        ("budgets:\n  - {name: b, scope: planet:mars, limit: 1}\n", "budgets[0].scope"),
        ("budgets:\n  - {name: b, scope: server, limit: -2}\n", "budgets[0].limit"),
        ("breakers:\n  defaults: {cooldown: -1}\n", "breakers.defaults.cooldown"),
        ("quota:\n  - {name: a}\n", "quota"),
        ("alerts: {url: 'http://hooks.example.com/podium'}\n", "alerts.secret"),
        ("alerts: {url: 'mailto:ops@example.com', secret: k}\n", "alerts.url"),
        ("alerts: {url: 'https://u:p@example.com/', secret: k}\n", "alerts.url"),
        ("alerts: {kinds: []}\n", "alerts.kinds"),
        ("alerts: {kinds: [quota_wait, quota_wait]}\n", "alerts.kinds"),
        ("alerts: {kinds: [disk_full]}\n", "alerts.kinds[0]"),
        ("alerts: {budget_thresholds: [0.5, 1.5]}\n", "alerts.budget_thresholds"),
        ("alerts: {wait_after: 0}\n", "alerts.wait_after"),
        ("alerts: {min_interval: -1}\n", "alerts.min_interval"),
        ("alerts: {queue_size: 0}\n", "alerts.queue_size"),
        ("alerts: {webhook: 'https://example.com'}\n", "alerts.webhook"),
    ],
)
def test_a_bad_policy_file_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, text))
    assert caught.value.field == field, caught.value


def test_an_alerts_section_loads_with_its_defaults(tmp_path: Path) -> None:
    text = "alerts: {url: 'https://hooks.example.com/podium', secret: alerts-key}\n"
    alerts = load_policy(write(tmp_path, text)).alerts
    assert alerts is not None
    assert (alerts.url, alerts.secret) == ("https://hooks.example.com/podium", "alerts-key")
    assert alerts.kinds == [
        "budget_threshold",
        "breaker_opened",
        "breaker_closed",
        "quota_wait",
        "budget_wait",
    ]
    assert (alerts.wait_after, alerts.min_interval, alerts.queue_size) == (60, 300, 1000)
    assert load_policy(write(tmp_path, "")).alerts is None


def test_duplicate_names_in_a_policy_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, "quotas:\n" + QUOTA % ("a", "1") + QUOTA % ("a", "2")))
    assert "duplicate name 'a'" in caught.value.reason


def test_a_duplicate_name_is_named_by_its_field(tmp_path: Path) -> None:
    budget = "  - {name: b, scope: server, limit: 1}\n"
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, "budgets:\n" + budget + budget))
    assert caught.value.field == "budgets[1].name"


@pytest.mark.parametrize("text", ["quotas: [\n", "- just\n- a list\n"])
def test_a_policy_file_that_is_no_mapping_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, text))
    assert caught.value.field == ""
    assert "policy.yaml" in str(caught.value)


def test_a_missing_policy_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
