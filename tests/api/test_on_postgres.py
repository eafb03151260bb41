"""A representative part of the API suite, run unchanged against a server on
PostgreSQL (`--db postgresql://...`): the tests below are the very tests of
their own modules, collected here a second time with `db_path` naming a
database of the session's PostgreSQL server instead of a SQLite file.

Chains and fan-outs (with loops resumed after a restart), approvals, quotas
and budgets (concurrent calls against one budget, per tenant), watch replay
and live, reconnects, idempotent starts, listing with filters, and restarts
that resume interrupted runs. A kill -9 of a `podium serve --db
postgresql://...` process is in tests/e2e/test_on_postgres.py.
"""

from __future__ import annotations

import pytest

from tests.api.test_execution_service import (
    test_concurrent_start_runs_with_one_request_id_make_one_run,
    test_list_runs_filters_and_paginates,
    test_llm_step_usage_and_cost_add_up,
    test_start_run_is_idempotent_on_request_id,
    test_start_run_then_get_run,
)
from tests.api.test_fanout import (
    test_a_loop_resumes_after_a_restart_where_it_was,
    test_each_item_has_its_own_attempts_and_retries,
    test_failures_within_tolerance_leave_null_outputs,
    test_fan_out_output_is_the_item_outputs_in_item_order,
)
from tests.api.test_flow import test_continue_keeps_the_run_going_and_ends_partially_succeeded
from tests.api.test_governance_service import (
    test_a_budget_limit_below_the_period_spend_is_accepted_and_admits_nothing_new,
    test_list_quotas_and_budgets_reflect_the_policy,
    test_runtime_changes_persist_across_restarts,
)
from tests.api.test_llm_gateway import (
    test_a_server_budget_holds_under_concurrent_calls,
    test_quota_waits_are_shown_and_calls_never_exceed_the_burst,
)
from tests.api.test_persistence import (
    test_an_interrupted_run_resumes_and_succeeds,
    test_finished_runs_and_workflows_survive_a_restart,
    test_runs_resume_after_two_restarts,
)
from tests.api.test_tenants import test_one_tenants_calls_never_consume_another_tenants_budget
from tests.api.test_waits import (
    test_an_approval_times_out,
    test_an_approved_step_succeeds_and_the_run_goes_on,
    test_two_approvals_are_resolved_independently,
)
from tests.api.test_watch import (
    test_live_watch_of_a_running_run,
    test_reconnect_in_the_middle_loses_and_repeats_nothing,
    test_replay_of_a_finished_run,
    test_two_subscribers_see_identical_sequences,
)

__all__ = [
    "test_a_budget_limit_below_the_period_spend_is_accepted_and_admits_nothing_new",
    "test_a_loop_resumes_after_a_restart_where_it_was",
    "test_a_server_budget_holds_under_concurrent_calls",
    "test_an_approval_times_out",
    "test_an_approved_step_succeeds_and_the_run_goes_on",
    "test_an_interrupted_run_resumes_and_succeeds",
    "test_concurrent_start_runs_with_one_request_id_make_one_run",
    "test_continue_keeps_the_run_going_and_ends_partially_succeeded",
    "test_each_item_has_its_own_attempts_and_retries",
    "test_failures_within_tolerance_leave_null_outputs",
    "test_fan_out_output_is_the_item_outputs_in_item_order",
    "test_finished_runs_and_workflows_survive_a_restart",
    "test_list_quotas_and_budgets_reflect_the_policy",
    "test_list_runs_filters_and_paginates",
    "test_live_watch_of_a_running_run",
    "test_llm_step_usage_and_cost_add_up",
    "test_one_tenants_calls_never_consume_another_tenants_budget",
    "test_quota_waits_are_shown_and_calls_never_exceed_the_burst",
    "test_reconnect_in_the_middle_loses_and_repeats_nothing",
    "test_replay_of_a_finished_run",
    "test_runs_resume_after_two_restarts",
    "test_runtime_changes_persist_across_restarts",
    "test_start_run_is_idempotent_on_request_id",
    "test_start_run_then_get_run",
    "test_two_approvals_are_resolved_independently",
    "test_two_subscribers_see_identical_sequences",
]


@pytest.fixture
def db_path(postgres_db: str) -> str:
    """Every server of these tests, restarts included, runs on this database."""
    return postgres_db
