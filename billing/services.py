"""Billing writes: subscriptions (states, plan changes, cancellation), metering,
invoices and collection. Views, the API, tasks and the consoles call these."""
from __future__ import annotations

import calendar
import logging
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.limits import LIMITS, forget_plan_cache, usage
from billing.models import Plan, PlanSpan, Subscription, SubscriptionEvent
from platform_core.audit.services import audit_record
from platform_core.cache import forget_now_and_on_commit

logger = logging.getLogger(__name__)
S = Subscription.Status

# Explicit state machine: anything not listed is refused.
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    S.TRIAL: {S.ACTIVE, S.PAST_DUE, S.CANCELLED},
    S.ACTIVE: {S.PAST_DUE, S.CANCELLED},
    S.PAST_DUE: {S.ACTIVE, S.SUSPENDED, S.CANCELLED},
    S.SUSPENDED: {S.ACTIVE, S.CANCELLED},
    S.CANCELLED: {S.ACTIVE},  # a churned shop picks a plan again
}


class BillingError(Exception):
    """A billing change refused; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str = "", code: str = "invalid", status: int = 400):
        super().__init__(message)
        self.message, self.field, self.code, self.status = message, field, code, status


# --- rounding (docs/billing.md, docs/decisions/0021) ----------------------------------

def div_round_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounding halves away from zero (0.5 minor unit -> 1)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    return sign * ((abs(numerator) * 2 + denominator) // (2 * denominator))


def prorate(fee: int, days: int, days_in_month: int) -> int:
    return div_round_half_up(fee * days, days_in_month)


def commission_for(gmv: int, commission_bp: int) -> int:
    """Commission on a month's GMV; a month whose refunds exceed its sales owes none."""
    return div_round_half_up(max(gmv, 0) * commission_bp, 10_000)


# --- subscriptions -------------------------------------------------------------------

def _today(now: datetime | None = None) -> date:
    return timezone.localdate(now or timezone.now())


def _event(subscription, kind, *, from_status="", to_status="", data=None, actor=None, now=None):
    return SubscriptionEvent.objects.create(subscription=subscription, kind=kind, from_status=from_status,
                                            to_status=to_status, data=data or {},
                                            actor_email=getattr(actor, "email", "") or "",
                                            created_at=now or timezone.now())


def plan_get(code: str, *, active_only: bool = True) -> Plan:
    plans = Plan.objects.filter(code=(code or "").strip().lower())
    if active_only:
        plans = plans.filter(is_active=True)
    plan = plans.first()
    if plan is None:
        raise BillingError(f"There is no plan “{code}” on offer.", field="plan", code="unknown_plan", status=404)
    return plan


def subscription_start_trial(*, shop, now: datetime | None = None) -> Subscription:
    """A new shop's trial on the trial plan. Three small inserts inside the caller's
    transaction (shop_create): signup stays fast."""
    now = now or timezone.now()
    plan = Plan.objects.filter(code=settings.KAMENG_BILLING_TRIAL_PLAN).first()
    if plan is None:  # plans not seeded: the shop runs on default features until they are
        logger.warning("billing: trial plan %r does not exist; %s starts without a subscription",
                       settings.KAMENG_BILLING_TRIAL_PLAN, shop.slug)
        return None
    subscription = Subscription.objects.create(shop=shop, plan=plan, status=S.TRIAL,
                                               trial_ends_at=now + timedelta(days=plan.trial_days),
                                               created_at=now, updated_at=now)
    _event(subscription, "subscription.started", to_status=S.TRIAL, data={"plan": plan.code}, now=now)
    PlanSpan.objects.create(subscription=subscription, plan=plan, start=_today(now), charged=False)
    return subscription


def _locked(shop) -> Subscription:
    subscription = Subscription.objects.select_for_update().select_related("plan", "shop").filter(shop=shop).first()
    if subscription is None:
        raise BillingError("This shop has no subscription.", code="no_subscription", status=404)
    return subscription


def _sync_shop_status(subscription: Subscription, reason: str, actor=None) -> None:
    """The shop is suspended exactly while its subscription is; the middleware does the rest."""
    from tenants.models import Shop
    from tenants.services import shop_set_status

    shop = Shop.objects.get(pk=subscription.shop_id)  # fresh: the cached one may predate the last change
    if subscription.status == S.SUSPENDED and shop.status != Shop.Status.SUSPENDED:
        shop_set_status(shop=shop, status=Shop.Status.SUSPENDED, reason=reason, actor=actor)
    elif subscription.status in (S.ACTIVE, S.TRIAL, S.PAST_DUE) and shop.status == Shop.Status.SUSPENDED:
        shop_set_status(shop=shop, status=Shop.Status.TRIAL if subscription.status == S.TRIAL else Shop.Status.ACTIVE,
                        reason=reason, actor=actor)
    elif subscription.status == S.ACTIVE and shop.status == Shop.Status.TRIAL:
        shop_set_status(shop=shop, status=Shop.Status.ACTIVE, reason=reason, actor=actor)


def _restart_span(subscription: Subscription, plan: Plan, *, on: date, charged: bool, open_new: bool = True) -> None:
    span = subscription.spans.filter(end__isnull=True).first()
    if span is not None:
        if span.start == on:  # changed again the same day: the day belongs to the newest plan
            span.delete()
        else:
            span.end = on
            span.save(update_fields=["end"])
    if open_new:
        PlanSpan.objects.create(subscription=subscription, plan=plan, start=on, charged=charged)


def subscription_transition(*, subscription: Subscription, to: str, kind: str, reason: str = "", actor=None,
                            data: dict | None = None, now: datetime | None = None,
                            effective: date | None = None) -> Subscription:
    """Move a (locked) subscription to ``to`` if the state machine allows it; one event
    per transition, the shop's status kept in step. Call inside a transaction.
    ``effective`` is the day charging starts or stops (default: today)."""
    now = now or timezone.now()
    if to not in ALLOWED_TRANSITIONS.get(subscription.status, set()):
        raise BillingError(f"A {subscription.get_status_display()} subscription cannot become {to}.",
                           code="invalid_transition", status=409)
    previous = subscription.status
    today = effective or _today(now)
    if to == S.CANCELLED:
        # a cancelled shop stays online on the fallback (Free) plan and is billed by it
        fallback = Plan.objects.filter(code=settings.KAMENG_BILLING_FALLBACK_PLAN).first()
        _restart_span(subscription, fallback or subscription.plan, on=today, charged=fallback is not None,
                      open_new=fallback is not None)
        subscription.cancelled_at = now
    elif previous == S.TRIAL or previous == S.CANCELLED:
        # charging starts today (trial over, or a churned shop came back)
        _restart_span(subscription, subscription.plan, on=today, charged=True)
    subscription.past_due_since = now if to == S.PAST_DUE else (
        subscription.past_due_since if to == S.SUSPENDED else None)
    if to != S.CANCELLED:
        subscription.cancelled_at = None if previous == S.CANCELLED else subscription.cancelled_at
    subscription.status = to
    subscription.updated_at = now
    subscription.save()
    _event(subscription, kind, from_status=previous, to_status=to, data={**(data or {}), "reason": reason},
           actor=actor, now=now)
    audit_record(action=f"billing.subscription.{to}", actor=actor, target=subscription.shop, reason=reason[:500],
                 data={"from": previous, "to": to, "kind": kind, "shop": subscription.shop.slug})
    _sync_shop_status(subscription, reason or kind, actor=actor)
    forget_now_and_on_commit(lambda: forget_plan_cache(subscription.shop))
    return subscription


def _over_limits(shop, plan: Plan) -> list[str]:
    problems = []
    for limit, (singular, plural) in LIMITS.items():
        allowed = plan.limit(limit)
        if allowed is None or limit == "monthly_orders":  # orders already taken this month stay taken
            continue
        used = usage(shop, limit)
        if used > allowed:
            problems.append(f"{used} {plural} (the {plan.name} plan allows {allowed})")
    return problems


def subscription_change_plan(*, shop, plan_code: str, actor=None, request=None,
                             now: datetime | None = None) -> Subscription:
    """Switch plan from today. The fee is prorated by day on the month's invoice: days
    before today at the old plan, today and after at the new one."""
    now = now or timezone.now()
    plan = plan_get(plan_code)
    with transaction.atomic():
        subscription = _locked(shop)
        if subscription.plan_id == plan.pk and subscription.status != S.CANCELLED:
            raise BillingError(f"The shop is already on the {plan.name} plan.", field="plan", code="same_plan")
        if subscription.status == S.SUSPENDED:
            raise BillingError("Pay the open invoice first; then you can change plan.", code="suspended", status=409)
        if plan.currency != subscription.plan.currency:
            raise BillingError("Plans in another currency cannot be switched to; contact the platform.", field="plan")
        problems = _over_limits(shop, plan)
        if problems:
            raise BillingError(f"The shop uses more than the {plan.name} plan allows: {'; '.join(problems)}. "
                               "Remove some first.", field="plan", code="over_limit", status=409)
        previous_plan = subscription.plan
        subscription.plan = plan
        subscription.cancel_at_period_end = False
        subscription.updated_at = now
        if subscription.status == S.CANCELLED:
            subscription.save()
            subscription_transition(subscription=subscription, to=S.ACTIVE, kind="subscription.resubscribed",
                                    actor=actor, data={"plan": plan.code}, now=now)
        else:
            _restart_span(subscription, plan, on=_today(now), charged=subscription.status != S.TRIAL)
            subscription.save()
        _event(subscription, "subscription.plan_changed", from_status=subscription.status,
               to_status=subscription.status, data={"from": previous_plan.code, "to": plan.code}, actor=actor, now=now)
        audit_record(action="billing.plan_changed", actor=actor, target=shop, request=request,
                     data={"from": previous_plan.code, "to": plan.code, "shop": shop.slug})
        transaction.on_commit(lambda: forget_plan_cache(shop))
    forget_plan_cache(shop)
    return subscription


def subscription_cancel(*, shop, actor=None, request=None, now: datetime | None = None) -> Subscription:
    """Cancel at the end of the current month: the shop keeps its plan until then."""
    now = now or timezone.now()
    with transaction.atomic():
        subscription = _locked(shop)
        if subscription.status == S.CANCELLED:
            raise BillingError("The subscription is already cancelled.", code="already_cancelled", status=409)
        if subscription.cancel_at_period_end:
            return subscription  # a second click changes nothing
        subscription.cancel_at_period_end = True
        subscription.updated_at = now
        subscription.save(update_fields=["cancel_at_period_end", "updated_at"])
        _event(subscription, "subscription.cancel_requested", from_status=subscription.status,
               to_status=subscription.status, data={"effective": str(next_month_start(_today(now)))},
               actor=actor, now=now)
        audit_record(action="billing.cancel_requested", actor=actor, target=shop, request=request,
                     data={"shop": shop.slug})
    return subscription


def subscription_resume(*, shop, actor=None, request=None, now: datetime | None = None) -> Subscription:
    """Take back a cancellation that has not taken effect yet."""
    now = now or timezone.now()
    with transaction.atomic():
        subscription = _locked(shop)
        if not subscription.cancel_at_period_end:
            return subscription
        subscription.cancel_at_period_end = False
        subscription.updated_at = now
        subscription.save(update_fields=["cancel_at_period_end", "updated_at"])
        _event(subscription, "subscription.cancel_withdrawn", from_status=subscription.status,
               to_status=subscription.status, actor=actor, now=now)
        audit_record(action="billing.cancel_withdrawn", actor=actor, target=shop, request=request,
                     data={"shop": shop.slug})
    return subscription


def next_month_start(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def subscriptions_roll(now: datetime | None = None) -> dict[str, int]:
    """Beat job: trials that ended become active; cancellations take effect on the first
    of the month after they were asked for. Safe to run any number of times."""
    now = now or timezone.now()
    done = {"trials_ended": 0, "cancelled": 0}
    due_trials = Subscription.objects.filter(status=S.TRIAL, trial_ends_at__lte=now).values_list("pk", flat=True)
    for pk in list(due_trials):
        with transaction.atomic():
            subscription = Subscription.objects.select_for_update().select_related("shop", "plan").get(pk=pk)
            if subscription.status != S.TRIAL or subscription.trial_ends_at > now:
                continue  # another run got here first
            if subscription.cancel_at_period_end:
                subscription_transition(subscription=subscription, to=S.CANCELLED, kind="subscription.cancelled",
                                        reason="Cancelled during the trial.", now=now)
                done["cancelled"] += 1
            else:
                subscription_transition(subscription=subscription, to=S.ACTIVE, kind="subscription.trial_ended",
                                        reason="Trial ended.", now=now,
                                        effective=timezone.localdate(subscription.trial_ends_at))
                done["trials_ended"] += 1
    today = _today(now)
    for pk in list(Subscription.objects.filter(cancel_at_period_end=True).exclude(status__in=[S.CANCELLED, S.TRIAL])
                   .values_list("pk", flat=True)):
        with transaction.atomic():
            subscription = Subscription.objects.select_for_update().select_related("shop", "plan").get(pk=pk)
            requested = subscription.events.filter(kind="subscription.cancel_requested").last()
            if subscription.status == S.CANCELLED or requested is None:
                continue
            effective = next_month_start(timezone.localdate(requested.created_at))
            if today >= effective:
                subscription_transition(subscription=subscription, to=S.CANCELLED, kind="subscription.cancelled",
                                        reason="Cancelled at the end of the period.", now=now, effective=effective)
                subscription.cancel_at_period_end = False
                subscription.save(update_fields=["cancel_at_period_end"])
                done["cancelled"] += 1
    return done


def month_bounds(year: int, month: int) -> tuple[date, date, int]:
    """First day, first day of the next month (exclusive) and the number of days."""
    first = date(year, month, 1)
    return first, next_month_start(first), calendar.monthrange(year, month)[1]


def plan_save(*, plan: Plan, actor=None, request=None) -> Plan:
    """Create or edit a plan from the platform console (validated, audited). Shops see
    new limits within a minute (the per-shop plan cache)."""
    from django.core.exceptions import ValidationError

    features = plan.features if isinstance(plan.features, list) else None
    if features is None or not all(isinstance(f, str) and f.startswith(("plugins.", "plugin.")) for f in features):
        raise BillingError('Features are a list such as ["plugins.payment", "plugin.sandbox"].', field="features")
    try:
        plan.full_clean()
    except ValidationError as exc:
        raise BillingError(" ".join(exc.messages), field="plan") from None
    created = plan.pk is None
    with transaction.atomic():
        plan.save()
        audit_record(action="billing.plan_created" if created else "billing.plan_changed", actor=actor,
                     target=plan, request=request,
                     data={"code": plan.code, "fee": plan.monthly_fee, "commission_bp": plan.commission_bp,
                           "features": plan.features})
    return plan


def subscription_make_complimentary(*, shop, plan_code: str, actor=None, reason: str = "") -> Subscription:
    """Put a shop on ``plan_code`` for free, for good (the demo shop, partners): active,
    never invoiced. Running it again changes nothing."""
    plan = plan_get(plan_code, active_only=False)
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().select_related("plan", "shop").filter(shop=shop).first()
        if subscription is None:
            subscription = subscription_start_trial(shop=shop)
        if subscription.complimentary and subscription.plan_id == plan.pk and subscription.status == S.ACTIVE:
            return subscription
        if subscription.plan_id != plan.pk:
            _restart_span(subscription, plan, on=_today(), charged=False)
            subscription.plan = plan
        subscription.complimentary = True
        subscription.cancel_at_period_end = False
        subscription.save()
        _event(subscription, "subscription.complimentary", from_status=subscription.status,
               to_status=subscription.status, data={"plan": plan.code, "reason": reason}, actor=actor)
        if subscription.status != S.ACTIVE:
            subscription_transition(subscription=subscription, to=S.ACTIVE, kind="subscription.complimentary",
                                    reason=reason or "Complimentary plan.", actor=actor)
        forget_plan_cache(shop)
    return subscription
