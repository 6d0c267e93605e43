"""The subscription state machine: explicit transitions with an event each, trials that
end, cancellation at the end of the month, and plan changes that prorate by day."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from billing import services
from billing.models import PlanSpan, Subscription
from billing.tasks import meter_usage, roll_subscriptions
from platform_core.audit.models import AuditEvent
from tests.billing.test_invoices import start_paid_subscription

SH = ZoneInfo("Asia/Shanghai")


def at(*args):
    return datetime(*args, tzinfo=SH)


def spans(shop):
    return [(s.plan.code, s.start.isoformat(), s.end.isoformat() if s.end else None, s.charged)
            for s in PlanSpan.objects.filter(subscription__shop=shop).order_by("start", "id")]


def test_new_shop_gets_a_trial_with_an_uncharged_span(alpha):
    sub = Subscription.objects.get(shop=alpha)
    assert sub.status == "trial" and sub.trial_ends_at > sub.created_at
    assert [(code, charged) for code, _s, end, charged in spans(alpha)] == [("pro", False)]


def test_only_listed_transitions_are_allowed(alpha):
    sub = Subscription.objects.get(shop=alpha)
    for wrong in ("suspended", "trial", "nonsense"):
        with pytest.raises(services.BillingError, match="cannot become"):
            services.subscription_transition(subscription=sub, to=wrong, kind="test")
    sub.refresh_from_db()
    assert sub.status == "trial" and sub.events.count() == 1
    services.subscription_transition(subscription=sub, to="active", kind="test")
    with pytest.raises(services.BillingError):
        services.subscription_transition(subscription=sub, to="suspended", kind="test")  # active -> past due first
    services.subscription_transition(subscription=sub, to="past_due", kind="test")
    services.subscription_transition(subscription=sub, to="suspended", kind="test", reason="unpaid")
    alpha.refresh_from_db()
    assert alpha.status == "suspended"
    services.subscription_transition(subscription=sub, to="active", kind="test", reason="paid")
    alpha.refresh_from_db()
    assert alpha.status == "active"
    assert [(e.from_status, e.to_status) for e in sub.events.order_by("id")][1:] == [
        ("trial", "active"), ("active", "past_due"), ("past_due", "suspended"), ("suspended", "active")]
    assert AuditEvent.objects.filter(action="billing.subscription.suspended").exists()


def test_trial_end_is_rolled_once_and_charging_starts_on_the_trial_end_day(alpha):
    sub = Subscription.objects.get(shop=alpha)
    PlanSpan.objects.filter(subscription=sub).delete()
    sub.trial_ends_at = at(2026, 3, 10, 15, 0)
    sub.save()
    PlanSpan.objects.create(subscription=sub, plan=sub.plan, start=date(2026, 2, 24), charged=False)
    assert services.subscriptions_roll(now=at(2026, 3, 10, 14, 59)) == {"trials_ended": 0, "cancelled": 0}
    assert services.subscriptions_roll(now=at(2026, 3, 12, 9, 0)) == {"trials_ended": 1, "cancelled": 0}
    assert services.subscriptions_roll(now=at(2026, 3, 12, 9, 0)) == {"trials_ended": 0, "cancelled": 0}
    assert spans(alpha) == [("pro", "2026-02-24", "2026-03-10", False), ("pro", "2026-03-10", None, True)]


def test_cancel_takes_effect_on_the_first_of_next_month_and_falls_back_to_free(alpha):
    start_paid_subscription(alpha, plan="business", trial_end=at(2026, 4, 1, 0, 0))
    services.subscription_cancel(shop=alpha, now=at(2026, 4, 20, 10, 0))
    assert services.subscriptions_roll(now=at(2026, 4, 30, 23, 59))["cancelled"] == 0
    assert services.subscriptions_roll(now=at(2026, 5, 2, 8, 0))["cancelled"] == 1  # a late run: still 1 May
    sub = Subscription.objects.get(shop=alpha)
    assert sub.status == "cancelled" and not sub.cancel_at_period_end
    assert spans(alpha)[-2:] == [("business", "2026-04-01", "2026-05-01", True), ("free", "2026-05-01", None, True)]
    from billing.limits import shop_plan

    assert shop_plan(alpha).code == "free"
    with pytest.raises(services.BillingError, match="already cancelled"):
        services.subscription_cancel(shop=alpha)
    # coming back: a plan change reactivates
    services.subscription_change_plan(shop=alpha, plan_code="pro", now=at(2026, 5, 9, 10, 0))
    assert Subscription.objects.get(shop=alpha).status == "active"
    assert spans(alpha)[-2:] == [("free", "2026-05-01", "2026-05-09", True), ("pro", "2026-05-09", None, True)]


def test_two_plan_changes_on_one_day_bill_the_day_once_at_the_last_plan(alpha):
    start_paid_subscription(alpha, plan="pro", trial_end=at(2026, 6, 1, 0, 0))
    services.subscription_change_plan(shop=alpha, plan_code="business", now=at(2026, 6, 10, 9, 0))
    services.subscription_change_plan(shop=alpha, plan_code="free", now=at(2026, 6, 10, 17, 0))
    assert spans(alpha)[-2:] == [("pro", "2026-06-01", "2026-06-10", True), ("free", "2026-06-10", None, True)]


def test_suspended_shop_cannot_change_plan_and_inactive_plans_are_not_offered(alpha, plans):
    sub = Subscription.objects.get(shop=alpha)
    sub.status = "suspended"
    sub.save()
    with pytest.raises(services.BillingError, match="Pay the open invoice"):
        services.subscription_change_plan(shop=alpha, plan_code="business")
    sub.status = "active"
    sub.save()
    plans["business"].is_active = False
    plans["business"].save()
    with pytest.raises(services.BillingError, match="no plan"):
        services.subscription_change_plan(shop=alpha, plan_code="business")


def test_beat_tasks_run_in_public_and_are_idempotent(alpha, bravo):
    assert meter_usage() == meter_usage()  # every real shop, yesterday and today
    assert roll_subscriptions() == {"trials_ended": 0, "cancelled": 0}


def test_demo_shop_is_complimentary_business_and_never_invoiced(db, tmp_path):
    from billing import invoicing
    from platform_core.demo import demo_ensure
    from tenants.models import Shop

    demo_ensure(tmp_path)
    demo_ensure(tmp_path)  # `make run` twice
    shop = Shop.objects.get(slug="demo")
    sub = Subscription.objects.get(shop=shop)
    assert (sub.plan.code, sub.status, sub.complimentary) == ("business", "active", True)
    assert sub.events.filter(kind="subscription.complimentary").count() == 2  # the flag, then the transition
    assert invoicing.invoice_issue_monthly(shop=shop, year=2026, month=1, now=at(2026, 2, 1, 9, 0)) is None


def test_shops_older_than_billing_are_backfilled_onto_a_trial(alpha, bravo):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("billing.migrations.0002_seed_plans_and_guards")
    Subscription.objects.filter(shop=alpha).delete()
    assert migration.backfill_subscriptions(apps) == 1  # only alpha lacked one
    sub = Subscription.objects.get(shop=alpha)
    assert (sub.plan.code, sub.status) == ("pro", "trial")
    assert sub.events.get().data == {"plan": "pro", "backfilled": True}
    assert migration.backfill_subscriptions(apps) == 0
