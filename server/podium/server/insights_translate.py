"""Insights (podium.engine.insights) to their proto messages."""

from __future__ import annotations

from podium.engine.insights import Insights, Recommendation, StepInsight
from podium.server.translate import duration, money, workflow_name
from podium.v1 import control_service_pb2

C = control_service_pb2
KINDS = {
    "bottleneck": C.RECOMMENDATION_KIND_BOTTLENECK,
    "flaky": C.RECOMMENDATION_KIND_FLAKY,
    "cost": C.RECOMMENDATION_KIND_COST,
    "dependency": C.RECOMMENDATION_KIND_DEPENDENCY,
    "concurrency": C.RECOMMENDATION_KIND_CONCURRENCY,
    "cache": C.RECOMMENDATION_KIND_CACHE,
}


def insights_to_proto(insights: Insights) -> control_service_pb2.WorkflowInsights:
    return C.WorkflowInsights(
        workflow=workflow_name(insights.workflow_id),
        runs=insights.runs,
        enough_history=insights.enough_history,
        note=insights.note,
        p50_run_duration=duration(insights.p50_run_duration),
        p95_run_duration=duration(insights.p95_run_duration),
        p50_run_cost=money(insights.p50_run_cost),
        p95_run_cost=money(insights.p95_run_cost),
        steps=[_step(s) for s in insights.steps],
        critical_path=insights.critical_path,
        critical_path_duration=duration(insights.critical_path_duration),
        recommendations=[_recommendation(r) for r in insights.recommendations],
    )


def _step(step: StepInsight) -> control_service_pb2.StepInsight:
    return C.StepInsight(
        step_id=step.step_id,
        agent=step.agent,
        executions=step.executions,
        p50_duration=duration(step.p50_duration),
        p95_duration=duration(step.p95_duration),
        p50_queue_wait=duration(step.p50_queue_wait),
        p95_queue_wait=duration(step.p95_queue_wait),
        p50_quota_wait=duration(step.p50_quota_wait),
        p95_quota_wait=duration(step.p95_quota_wait),
        retry_rate=step.retry_rate,
        failure_rate=step.failure_rate,
        failure_types=step.failure_types,
        cost_share=step.cost_share,
        mean_cost=money(step.mean_cost),
    )


def _recommendation(item: Recommendation) -> control_service_pb2.Recommendation:
    return C.Recommendation(
        kind=KINDS[item.kind],
        step_id=item.step_id,
        summary=item.summary,
        evidence=item.evidence,
        estimated_time_saving=duration(item.saving_seconds),
        estimated_cost_saving=money(item.saving_cost),
        suggestion=item.suggestion,
    )
