"""A failed 对账 day is tried again by itself when waiting can help (the gateway is down,
the report is not published yet), hourly and at most eight times in a row; a cause only
the shop can fix is not retried. Against the real sandbox gateway."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from platform_core.payments.models import ReconciliationRun
from platform_core.payments.reconciliation import (
    AUTOMATIC_ATTEMPTS,
    RETRY_EVERY,
    reconcile_day,
    retry_due_reconciliations,
)
from sandbox_gateway import serve_in_thread
from tests.payments.conftest import enable_sandbox
from tests.payments.test_reconciliation import seeded  # noqa: F401 - fixture

Status = ReconciliationRun.Status


def make_due(run):
    ReconciliationRun.objects.filter(pk=run.pk).update(retry_at=timezone.now() - timedelta(seconds=1))


@pytest.fixture
def today():
    return timezone.now().date()


def test_a_gateway_that_is_down_is_tried_again_hourly_until_it_answers(sandbox_shop, gateway, api_key, today):
    gateway.stop()
    before = timezone.now()
    run = reconcile_day(provider_slug="sandbox", day=today)
    assert run.status == Status.FAILED and run.failed_attempts == 1
    assert before + RETRY_EVERY <= run.retry_at <= timezone.now() + RETRY_EVERY

    assert retry_due_reconciliations() == []  # not due yet: nothing is asked
    run.refresh_from_db()
    assert run.failed_attempts == 1

    make_due(run)
    [again] = retry_due_reconciliations()
    assert again.pk == run.pk and again.status == Status.FAILED and again.failed_attempts == 2
    assert again.retry_at > timezone.now()

    back, base_url = serve_in_thread()  # the gateway answers again
    back.base = base_url
    try:
        enable_sandbox(sandbox_shop, back, api_key)
        make_due(run)
        [done] = retry_due_reconciliations()
    finally:
        back.stop()
    assert done.status == Status.MATCHED and done.message == ""
    assert done.failed_attempts == 0 and done.retry_at is None
    assert retry_due_reconciliations() == []


def test_retries_stop_after_eight_failed_tries_in_a_row(sandbox_shop, gateway, today):
    gateway.stop()
    run = reconcile_day(provider_slug="sandbox", day=today)
    for attempt in range(2, AUTOMATIC_ATTEMPTS + 1):
        make_due(run)
        [run] = retry_due_reconciliations()
        assert run.failed_attempts == attempt
    assert run.failed_attempts == AUTOMATIC_ATTEMPTS and run.retry_at is None
    assert retry_due_reconciliations() == []
    # running the day by hand still works, and counts on
    assert reconcile_day(provider_slug="sandbox", day=today).failed_attempts == AUTOMATIC_ATTEMPTS + 1


def test_wrong_credentials_are_not_retried(sandbox_shop, api_key, today):
    strict, base_url = serve_in_thread(auto_register=False)  # the shop's key is unknown to this gateway
    strict.base = base_url
    try:
        enable_sandbox(sandbox_shop, strict, api_key)
        run = reconcile_day(provider_slug="sandbox", day=today)
    finally:
        strict.stop()
    assert run.status == Status.FAILED and "refused the shop's API key" in run.message
    assert run.failed_attempts == 1 and run.retry_at is None


def test_a_day_that_fails_after_a_success_starts_counting_again(sandbox_shop, gateway, today):
    assert reconcile_day(provider_slug="sandbox", day=today).status == Status.MATCHED
    gateway.stop()
    run = reconcile_day(provider_slug="sandbox", day=today)
    assert run.status == Status.FAILED and run.failed_attempts == 1 and run.retry_at is not None


def test_the_beat_task_retries_due_days_of_the_shop(sandbox_shop, gateway, today):
    from platform_core.payments.tasks import retry_failed_reconciliations

    gateway.stop()
    run = reconcile_day(provider_slug="sandbox", day=today)
    make_due(run)
    assert retry_failed_reconciliations.delay().get() == 1
    run.refresh_from_db()
    assert run.failed_attempts == 2


def test_console_and_api_say_when_the_next_try_is(sandbox_shop, gateway, alice, shop_client, today):
    from tests.payments.test_reconciliation import api_as

    gateway.stop()
    reconcile_day(provider_slug="sandbox", day=today)
    html = shop_client(sandbox_shop, alice).get("/manage/reconciliation/").content.decode()
    assert "Tries again by itself at" in html and "try 1 failed" in html
    body = api_as(alice).get("/api/v1/reconciliation/").json()
    [run] = body["results"] if isinstance(body, dict) else body
    assert run["status"] == "failed" and run["failed_attempts"] == 1 and run["retry_at"]

    ReconciliationRun.objects.update(failed_attempts=AUTOMATIC_ATTEMPTS, retry_at=None)
    html = shop_client(sandbox_shop, alice).get("/manage/reconciliation/").content.decode()
    assert "Not retried automatically" in html and "Tries again by itself" not in html


def test_an_unexpected_error_counts_as_a_failed_try_and_other_days_still_run(sandbox_shop, gateway, api_key,
                                                                              today, monkeypatch):
    from plugins.payments.sandbox.plugin import SandboxPaymentPlugin

    yesterday = today - timedelta(days=1)
    real_settlement = SandboxPaymentPlugin.settlement

    def settlement(self, day):
        if day == yesterday:
            raise RuntimeError("a bug while reading the report")
        return real_settlement(self, day)

    gateway.stop()
    first = reconcile_day(provider_slug="sandbox", day=yesterday)
    second = reconcile_day(provider_slug="sandbox", day=today)
    back, base_url = serve_in_thread()
    back.base = base_url
    try:
        enable_sandbox(sandbox_shop, back, api_key)
        monkeypatch.setattr(SandboxPaymentPlugin, "settlement", settlement)
        make_due(first)
        make_due(second)
        runs = {run.day: run for run in retry_due_reconciliations()}
    finally:
        back.stop()
    assert runs[yesterday].status == Status.FAILED and runs[yesterday].failed_attempts == 2
    assert "error in Kameng" in runs[yesterday].message and runs[yesterday].retry_at > timezone.now()
    assert runs[today].status == Status.MATCHED


def test_settling_a_finding_of_a_day_whose_last_run_failed_keeps_it_failed_and_due(seeded, gateway,  # noqa: F811
                                                                                     alice):
    from platform_core.payments.reconciliation import reconciliation_dismiss

    day = timezone.now().date()
    run = reconcile_day(provider_slug="sandbox", day=day)
    gateway.stop()
    failed = reconcile_day(provider_slug="sandbox", day=day)
    assert failed.pk == run.pk and failed.status == Status.FAILED and failed.retry_at is not None
    item = failed.items.filter(status="open").first()
    reconciliation_dismiss(item_id=item.pk, note="checked in the dashboard", actor=alice)
    failed.refresh_from_db()
    assert failed.status == Status.FAILED and failed.retry_at is not None
    assert failed.open_items == failed.items.filter(status="open").count()
