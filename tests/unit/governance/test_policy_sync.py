"""The merge a cluster's policy sync applies: the policy file's quotas and
budgets, then the stored runtime overrides (a None body deletes)."""

from __future__ import annotations

import pytest

from podium.governance.policy import BudgetPolicy, QuotaPolicy
from podium.governance.policy_sync import PolicySync, with_overrides


def quota(name: str, limit: float) -> QuotaPolicy:
    return QuotaPolicy.model_validate(
        {"name": name, "scope": "provider:simulated", "dimension": "requests", "limit": limit}
    )


def budget(name: str, limit: str) -> BudgetPolicy:
    return BudgetPolicy.model_validate({"name": name, "scope": "server", "limit": limit})


def test_overrides_replace_add_and_delete() -> None:
    quotas, budgets = with_overrides(
        [quota("kept", 1), quota("replaced", 2), quota("deleted", 3)],
        [budget("file", "5")],
        {
            "replaced": quota("replaced", 20).model_dump(mode="json"),
            "deleted": None,
            "added": quota("added", 4).model_dump(mode="json"),
        },
        {"file": None, "runtime": budget("runtime", "7").model_dump(mode="json")},
    )
    assert {name: q.limit for name, q in quotas.items()} == {
        "kept": 1,
        "replaced": 20,
        "added": 4,
    }
    assert set(budgets) == {"runtime"}
    assert str(budgets["runtime"].limit) == "7"


def test_a_tombstone_of_an_unknown_name_is_no_change() -> None:
    quotas, budgets = with_overrides([quota("kept", 1)], [], {"never-was": None}, {})
    assert set(quotas) == {"kept"} and budgets == {}


def test_the_sync_is_throttled() -> None:
    sync = PolicySync(interval=3600)
    assert sync.due()
    assert not sync.due()
    with pytest.raises(ValueError, match="interval"):
        PolicySync(interval=0)
