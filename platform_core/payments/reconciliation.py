"""Reconciliation (对账): what a gateway settled on a day against what Kameng recorded.

Findings, each a :class:`ReconciliationItem`:

* paid at the gateway, not in Kameng — a lost webhook the poller missed, or a payment
  for an order we no longer wait on: *fix* records the payment (the order is paid and
  delivered, or refunded if it cannot be);
* amount or currency differs — needs a person: *dismiss* with a note;
* paid in Kameng, unknown to the gateway — asked again one by one before it is flagged
  (a payment near midnight may settle the next day); needs a person;
* refunded at the gateway, not in Kameng — a refund made in the gateway's dashboard:
  *fix* records it against the order.

Fixes go through the same idempotent inbox as webhooks (``record_event``), so a fix and
a late webhook cannot both apply. Every fix and dismissal is audited."""
from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.db import transaction
from django.utils import timezone

from platform_core.audit.services import audit_record
from platform_core.payments.models import Payment, ReconciliationItem, ReconciliationRun, Refund
from platform_core.payments.services import UnknownProvider, payment_providers, provider_for, record_event
from plugins.base import MAIN_ACCOUNT
from plugins.payment import GatewayEvent, PaymentError, SettlementLine

logger = logging.getLogger(__name__)
Kind = ReconciliationItem.Kind
ItemStatus = ReconciliationItem.Status
MAX_DAYS_BACK = 400
# a report the gateway has not published yet (PayPal: up to 3 hours late; Alipay and
# WeChat Pay: about 9-10 a.m. China time) is tried again hourly, eight times in all
RETRY_EVERY = timedelta(hours=1)
AUTOMATIC_ATTEMPTS = 8


class ReconciliationError(Exception):
    def __init__(self, message: str, *, field: str = "", status: int = 400):
        super().__init__(message)
        self.message, self.field, self.status = message, field, status


def reconcilable_providers() -> list[str]:
    """Slugs of the shop's enabled payment methods that publish a settlement report."""
    return [provider.slug for provider in payment_providers() if provider.supports_settlement]


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=dt_timezone.utc)
    return start, start + timedelta(days=1)


def _check_day(day) -> date:
    if not isinstance(day, date) or isinstance(day, datetime):
        raise ReconciliationError("Give the day as a date (YYYY-MM-DD).", field="day")
    today = timezone.now().date()
    if day > today:  # today is allowed: a check of the day so far
        raise ReconciliationError("That day has not begun yet (days are in UTC).", field="day")
    if day < today - timedelta(days=MAX_DAYS_BACK):
        raise ReconciliationError(f"Reconciliation goes back at most {MAX_DAYS_BACK} days.", field="day")
    return day


def reconcile_day(*, provider_slug: str, day: date, actor=None, request=None) -> ReconciliationRun:
    """Compare ``provider_slug``'s settlement report for ``day`` (UTC) with our records.
    Safe to run again: the day's run is updated, decisions already taken are kept."""
    day = _check_day(day)
    try:
        provider = provider_for(provider_slug)
    except UnknownProvider as exc:
        raise ReconciliationError(str(exc), field="provider") from None
    if not provider.supports_settlement:
        raise ReconciliationError(f"{provider.name} offers no settlement report to reconcile against.",
                                  field="provider")
    try:
        # each merchant account settles its own payments (a backup merchant's too)
        reports = [(bound, bound.settlement(day)) for bound in provider.every_account()]
    except PaymentError as exc:
        return _record_failure(provider_slug, day, exc)
    findings, matched, lines = [], 0, []
    for bound, account_lines in reports:
        account_findings, account_matched = _compare(bound, day, account_lines)
        findings, matched, lines = findings + account_findings, matched + account_matched, lines + account_lines
    with transaction.atomic():
        run, _ = ReconciliationRun.objects.select_for_update().get_or_create(
            provider=provider_slug, day=day, defaults={"status": ReconciliationRun.Status.MATCHED})
        run.items.filter(status=ItemStatus.OPEN).delete()
        decided = set(run.items.values_list("kind", "external_id"))
        ReconciliationItem.objects.bulk_create([
            ReconciliationItem(run=run, **finding) for finding in findings
            if (finding["kind"], finding["external_id"]) not in decided])
        net: dict[str, int] = {}
        for line in lines:
            net[line.currency] = net.get(line.currency, 0) + (line.amount if line.kind == "payment" else -line.amount)
        run.gateway_payments = sum(1 for line in lines if line.kind == "payment")
        run.gateway_refunds = sum(1 for line in lines if line.kind == "refund")
        run.gateway_net, run.matched = net, matched
        run.open_items = run.items.filter(status=ItemStatus.OPEN).count()
        run.status = ReconciliationRun.Status.MISMATCHES if run.open_items else ReconciliationRun.Status.MATCHED
        run.message, run.finished_at = "", timezone.now()
        run.failed_attempts, run.retry_at = 0, None
        run.save()
        audit_record(action="payments.reconciled", actor=actor, target=run, request=request,
                     data={"provider": provider_slug, "day": day.isoformat(), "matched": matched,
                           "open_items": run.open_items})
    return run


def _record_failure(provider_slug: str, day: date, exc: PaymentError) -> ReconciliationRun:
    """A failed run, with the next automatic try when waiting can help (a report not
    published yet, a gateway down): hourly, up to :data:`AUTOMATIC_ATTEMPTS` in a row."""
    now = timezone.now()
    with transaction.atomic():
        run, created = ReconciliationRun.objects.select_for_update().get_or_create(
            provider=provider_slug, day=day, defaults={"status": ReconciliationRun.Status.FAILED})
        run.failed_attempts = (run.failed_attempts if run.status == ReconciliationRun.Status.FAILED else 0) + 1
        run.status, run.message, run.finished_at = ReconciliationRun.Status.FAILED, exc.message[:300], now
        waiting_helps = exc.retryable and run.failed_attempts < AUTOMATIC_ATTEMPTS
        run.retry_at = now + RETRY_EVERY if waiting_helps else None
        run.save()
    logger.warning("reconciliation of %s on %s failed (try %s, %s): %s", provider_slug, day, run.failed_attempts,
                   f"next at {run.retry_at:%H:%M} UTC" if run.retry_at else "no automatic retry", exc.message)
    return run


def retry_due_reconciliations() -> list[ReconciliationRun]:
    """Beat job, per shop: run again each failed day whose automatic retry is due.

    Each day is claimed first (its next try moved an interval on, rows locked by another
    worker skipped), so overlapping jobs never try one day twice; an unexpected error
    counts as a failed try and does not stop the other days."""
    runs = []
    due = ReconciliationRun.objects.filter(status=ReconciliationRun.Status.FAILED, retry_at__lte=timezone.now())
    for run_id in due.order_by("day", "provider").values_list("pk", flat=True):
        with transaction.atomic():
            run = due.select_for_update(skip_locked=True).filter(pk=run_id).first()
            if run is None:
                continue  # another worker has it, or it is no longer due
            run.retry_at = timezone.now() + RETRY_EVERY
            run.save(update_fields=["retry_at"])
        try:
            runs.append(reconcile_day(provider_slug=run.provider, day=run.day))
        except ReconciliationError as exc:  # the day is now too old, or the method was switched off
            ReconciliationRun.objects.filter(pk=run.pk).update(retry_at=None, message=str(exc)[:300])
        except Exception:  # noqa: BLE001 - one broken day must not stop the others
            logger.exception("automatic reconciliation of %s on %s crashed", run.provider, run.day)
            runs.append(_record_failure(run.provider, run.day, PaymentError(
                "The report could not be compared (an error in Kameng, logged for the operator).", retryable=True)))
    return runs


def _compare(provider, day: date, lines: list[SettlementLine]) -> tuple[list[dict], int]:
    """One merchant account's report against the payments that account took."""
    slug = provider.slug
    mine = Payment.objects.filter(provider=slug, account=provider.account_key)
    findings: list[dict] = []
    matched = 0
    payment_lines = [line for line in lines if line.kind == "payment"]
    refund_lines = [line for line in lines if line.kind == "refund"]
    ours = {p.external_id: p for p in mine.filter(
        external_id__in=[line.external_id for line in payment_lines])}
    by_reference = {str(p.pk): p for p in mine.filter(
        pk__in=[int(line.reference) for line in payment_lines
                               if line.reference.isdigit() and line.external_id not in ours])}
    for line in payment_lines:
        payment = ours.get(line.external_id) or by_reference.get(line.reference)
        base = {"external_id": line.external_id, "payment_external_id": line.external_id, "payment": payment,
                "gateway_amount": line.amount, "currency": line.currency,
                "kameng_amount": payment.amount if payment else None}
        if payment is None:
            findings.append({**base, "kind": Kind.PAID_NOT_RECORDED,
                             "detail": "The gateway settled a payment that names no payment of this shop."})
        elif payment.status not in (Payment.Status.SUCCEEDED, Payment.Status.DUPLICATE):
            findings.append({**base, "kind": Kind.PAID_NOT_RECORDED,
                             "detail": f"Kameng still has this payment as {payment.status} "
                                       f"(order {payment.order.number})."})
        elif payment.amount != line.amount or payment.currency != line.currency:
            findings.append({**base, "kind": Kind.AMOUNT_DIFFERS,
                             "detail": f"Gateway: {line.amount} {line.currency}; Kameng: {payment.amount} "
                                       f"{payment.currency} (order {payment.order.number})."})
        else:
            matched += 1
    settled_ids = {line.external_id for line in payment_lines}
    start, end = _day_bounds(day)
    for payment in (mine.filter(status=Payment.Status.SUCCEEDED,
                                           succeeded_at__gte=start, succeeded_at__lt=end)
                    .exclude(external_id__in=settled_ids).select_related("order")):
        if _gateway_confirms(provider, payment):
            continue  # settled on a neighbouring day
        findings.append({"kind": Kind.NOT_AT_GATEWAY, "external_id": payment.external_id or f"payment:{payment.pk}",
                         "payment_external_id": payment.external_id or "", "payment": payment,
                         "gateway_amount": None, "kameng_amount": payment.amount, "currency": payment.currency,
                         "detail": f"Order {payment.order.number} was marked paid, but the gateway does not "
                                   "confirm this payment."})
    known_refunds = set(Refund.objects.filter(
        payment__provider=slug, payment__account=provider.account_key,
        external_id__in=[line.external_id for line in refund_lines]).values_list("external_id", flat=True))
    refunded_payments = {p.external_id: p for p in mine.filter(
        external_id__in=[line.payment_external_id for line in refund_lines])}
    for line in refund_lines:
        if line.external_id in known_refunds:
            matched += 1
            continue
        payment = refunded_payments.get(line.payment_external_id)
        findings.append({"kind": Kind.REFUND_NOT_RECORDED, "external_id": line.external_id,
                         "payment_external_id": line.payment_external_id, "payment": payment,
                         "gateway_amount": line.amount, "kameng_amount": None, "currency": line.currency,
                         "detail": "Refunded at the gateway, outside Kameng"
                                   + (f" (order {payment.order.number})." if payment else
                                      "; the payment is not one of this shop's.")})
    return findings, matched


def _gateway_confirms(provider, payment: Payment) -> bool:
    try:
        status = provider.fetch_status(payment)
    except PaymentError:
        return False
    return status.status == "succeeded" and status.amount == payment.amount


def _open_item(item_id: int) -> ReconciliationItem:
    item = (ReconciliationItem.objects.select_for_update(of=("self",)).select_related("run", "payment")
            .filter(pk=item_id).first())
    if item is None:
        raise ReconciliationError("No such reconciliation finding in this shop.", status=404)
    if item.status != ItemStatus.OPEN:
        raise ReconciliationError(f"This finding is already {item.status}.", status=409)
    return item


def reconciliation_fix(*, item_id: int, actor=None, request=None) -> ReconciliationItem:
    """Put a finding right the way the gateway says it is: record the payment or the
    refund through the webhook inbox (idempotent), then close the finding."""
    with transaction.atomic():
        item = _open_item(item_id)
        if not item.fixable:
            raise ReconciliationError("Kameng cannot fix this kind of finding by itself: check it with the "
                                      "gateway and dismiss it with a note.", status=409)
        if item.kind == Kind.PAID_NOT_RECORDED:
            event = GatewayEvent(event_id=f"reconcile:{item.external_id}", kind="payment.succeeded",
                                 payment_reference=str(item.payment_id), external_id=item.external_id,
                                 amount=item.gateway_amount or 0, currency=item.currency,
                                 raw={"source": "reconciliation", "day": item.run.day.isoformat()})
        else:
            event = GatewayEvent(event_id=f"reconcile:{item.external_id}", kind="refund.succeeded",
                                 external_id=item.payment_external_id, amount=item.gateway_amount or 0,
                                 currency=item.currency, refund_external_id=item.external_id,
                                 raw={"source": "reconciliation", "day": item.run.day.isoformat()})
        # the account that took the payment verifies its own events (a finding with no
        # payment of ours is not fixable, see ReconciliationItem.fixable)
        account = item.payment.account if item.payment is not None else MAIN_ACCOUNT
        result = record_event(provider=item.run.provider, event=event, account=account)
        if result in ("unknown_payment", "amount_mismatch", "external_id_mismatch"):
            raise ReconciliationError(f"The gateway's record does not fit this shop's payment ({result}); "
                                      "dismiss it with a note instead.", status=409)
        _close(item, ItemStatus.FIXED, actor, f"Recorded from the gateway's report ({result}).")
        audit_record(action="payments.reconciliation_fixed", actor=actor, target=item, request=request,
                     data={"kind": item.kind, "external_id": item.external_id, "result": result,
                           "day": item.run.day.isoformat()})
    return item


def reconciliation_dismiss(*, item_id: int, note: str, actor=None, request=None) -> ReconciliationItem:
    note = (note or "").strip()
    if not note:
        raise ReconciliationError("Say why this finding needs no change (it is kept in the audit log).",
                                  field="note")
    with transaction.atomic():
        item = _open_item(item_id)
        _close(item, ItemStatus.DISMISSED, actor, note[:300])
        audit_record(action="payments.reconciliation_dismissed", actor=actor, target=item, request=request,
                     reason=note[:300], data={"kind": item.kind, "external_id": item.external_id,
                                              "day": item.run.day.isoformat()})
    return item


def _close(item: ReconciliationItem, status: str, actor, resolution: str) -> None:
    item.status, item.resolved_at, item.resolution = status, timezone.now(), resolution
    item.resolved_by = getattr(actor, "email", "") or "system"
    item.save(update_fields=["status", "resolved_by", "resolved_at", "resolution"])
    run = item.run
    run.open_items = run.items.filter(status=ItemStatus.OPEN).count()
    if run.status != ReconciliationRun.Status.FAILED:  # a failed last run stays failed (and due for its retry)
        run.status = ReconciliationRun.Status.MISMATCHES if run.open_items else ReconciliationRun.Status.MATCHED
    run.save(update_fields=["open_items", "status"])


def reconcile_yesterday() -> list[ReconciliationRun]:
    """Beat job, per shop: every payment method with a settlement report, for yesterday (UTC)."""
    day = timezone.now().date() - timedelta(days=1)
    return [reconcile_day(provider_slug=slug, day=day) for slug in reconcilable_providers()]


def open_findings():
    return (ReconciliationItem.objects.filter(status=ItemStatus.OPEN).select_related("run", "payment__order")
            .order_by("-run__day", "id"))


def recent_runs(limit: int = 30):
    return ReconciliationRun.objects.order_by("-day", "provider")[:limit]

