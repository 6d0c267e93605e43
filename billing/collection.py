"""Collecting invoices: "pay now" through the platform's payment provider, its
webhooks, and the dunning schedule (reminders, past due, suspension, reactivation).

Every step is idempotent: a webhook replayed, a double click on "pay" or the beat job
running twice changes nothing the second time."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.gateway import billing_gateway
from billing.models import BillingCustomer, CollectionAttempt, Invoice, Subscription
from billing.selectors import amount_due
from billing.services import BillingError, subscription_transition
from platform_core.audit.services import audit_record
from platform_core.money import format_minor
from plugins.payment import GatewayEvent, PaymentError

logger = logging.getLogger(__name__)
S = Subscription.Status
REUSE_PENDING_MINUTES = 30
PAID_TWICE = "Paid twice"


def _owner_emails(shop) -> list[str]:
    from tenants.models import ShopMembership

    return list(ShopMembership.objects.filter(shop=shop, role__in=["owner", "finance"])
                .values_list("merchant__email", flat=True))


def _billing_page(shop) -> str:
    from tenants.services import shop_url

    return shop_url(shop, "/manage/billing/")


def _mail(shop, subject: str, body: str, attachment: tuple[str, bytes] | None = None) -> None:
    recipients = _owner_emails(shop)
    if not recipients:
        return

    def send():
        message = EmailMessage(subject, body, None, recipients)
        if attachment:
            message.attach(attachment[0], attachment[1], "application/pdf")
        message.send(fail_silently=True)

    transaction.on_commit(send)


# --- the shop at the provider: customer and saved card ------------------------------

def billing_customer_ensure(*, shop, gateway) -> BillingCustomer:
    """The shop's customer record at a provider that saves cards, created there once
    (the provider call is idempotent per shop, the row unique per shop and provider)."""
    existing = BillingCustomer.objects.filter(shop=shop, provider=gateway.slug).first()
    if existing is not None:
        return existing
    customer_id = gateway.create_customer(shop)
    customer, _ = BillingCustomer.objects.get_or_create(shop=shop, provider=gateway.slug,
                                                        defaults={"customer_id": customer_id})
    return customer


def collection_remember_card(*, attempt: CollectionAttempt, gateway, now: datetime | None = None) -> bool:
    """After a paid hosted-page payment: keep the card it was paid with for the next
    invoices. A provider that cannot tell leaves the old card; dunning still works by
    link, so a failure here is logged, never raised."""
    try:
        card = gateway.saved_card(attempt)
    except PaymentError as exc:
        logger.warning("billing: could not read the card of attempt %s: %s", attempt.pk, exc.message)
        return False
    if card is None:
        return False
    shop = attempt.invoice.shop
    updated = BillingCustomer.objects.filter(shop=shop, provider=gateway.slug).update(
        payment_method_id=card.payment_method_id, card_brand=card.brand, card_last4=card.last4,
        card_saved_at=now or timezone.now())
    if updated:
        audit_record(action="billing.card_saved", target=shop,
                     data={"provider": gateway.slug, "brand": card.brand, "last4": card.last4,
                           "attempt": attempt.pk})
    return bool(updated)


# --- pay now -------------------------------------------------------------------------

def webhook_path() -> str:
    """Where the configured provider sends its events (on the platform host)."""
    return f"/billing/hooks/{billing_gateway().hook_name}/"


def invoice_pay_start(*, invoice: Invoice, return_url: str, notify_url: str, actor=None, request=None) -> CollectionAttempt:
    """Create (or reuse) a payment at the platform's gateway for what is due on
    ``invoice``; the owner is sent to ``attempt.pay_url``. A second click within half an
    hour gets the same payment, never a second one."""
    due = amount_due(invoice)
    if invoice.status != Invoice.Status.OPEN or due <= 0:
        raise BillingError("This invoice has nothing left to pay.", code="nothing_due", status=409)
    gateway = billing_gateway()
    if getattr(gateway, "saves_cards", False):
        billing_customer_ensure(shop=invoice.shop, gateway=gateway)
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        recent = locked.attempts.filter(status=CollectionAttempt.Status.PENDING, amount=due,
                                        created_at__gte=timezone.now() - timedelta(minutes=REUSE_PENDING_MINUTES)
                                        ).exclude(pay_url="").first()
        if recent is not None:
            return recent
        attempt = CollectionAttempt.objects.create(invoice=locked, provider=gateway.slug, amount=due,
                                                   currency=locked.currency)
        action = gateway.start(locked, attempt, return_url=return_url.replace("{attempt}", str(attempt.pk)),
                               notify_url=notify_url)
        attempt.external_id, attempt.pay_url = action.external_id, action.url
        attempt.save(update_fields=["external_id", "pay_url"])
        audit_record(action="billing.payment_started", actor=actor, target=locked, request=request,
                     data={"invoice": locked.number, "amount": due, "attempt": attempt.pk})
    return attempt


def collection_record_event(*, event: GatewayEvent) -> str:
    """Apply a verified gateway event to its attempt; replays are answered, not repeated.
    Money that arrives for an attempt already given up (a charge whose answer timed
    out) still pays the invoice: a success is accepted from ``failed`` too."""
    if event.kind not in ("payment.succeeded", "payment.failed"):
        return "ignored"
    if not event.payment_reference.isdigit():
        return "unknown payment"
    with transaction.atomic():
        attempt = (CollectionAttempt.objects.select_for_update().select_related("invoice")
                   .filter(pk=int(event.payment_reference)).first())
        if attempt is None:
            return "unknown payment"
        # (if another attempt paid meanwhile, invoice_mark_paid flags this one for refund)
        late_success = event.kind == "payment.succeeded" and attempt.status == CollectionAttempt.Status.FAILED \
            and not attempt.message.startswith(PAID_TWICE)
        if attempt.status != CollectionAttempt.Status.PENDING and not late_success:
            return "already recorded"
        if event.amount != attempt.amount or event.currency != attempt.currency:
            logger.warning("billing: event %s amount %s %s does not match attempt %s", event.event_id,
                           event.amount, event.currency, attempt.pk)
            return "amount mismatch"
        if event.kind == "payment.failed":
            attempt.status, attempt.finished_at = CollectionAttempt.Status.FAILED, timezone.now()
            attempt.message = "The payment failed at the gateway."
            attempt.save(update_fields=["status", "finished_at", "message"])
            return "failed"
        if event.external_id and not attempt.external_id:
            attempt.external_id = event.external_id
            attempt.save(update_fields=["external_id"])
        result = invoice_mark_paid(attempt=attempt)
        gateway = billing_gateway()
        if result == "paid" and attempt.pay_url and getattr(gateway, "saves_cards", False) \
                and attempt.provider == gateway.slug:
            collection_remember_card(attempt=attempt, gateway=gateway)
        return result


def invoice_mark_paid(*, attempt: CollectionAttempt, now: datetime | None = None) -> str:
    """Money arrived: attempt succeeded, invoice paid, and the shop back in service at
    once if it was past due or suspended. Call inside a transaction."""
    now = now or timezone.now()
    invoice = Invoice.objects.select_for_update().get(pk=attempt.invoice_id)
    attempt.status, attempt.finished_at = CollectionAttempt.Status.SUCCEEDED, now
    try:
        with transaction.atomic():
            attempt.save(update_fields=["status", "finished_at"])
    except IntegrityError:  # another attempt already paid it (one_paid_attempt)
        attempt.status = CollectionAttempt.Status.FAILED
        attempt.message = f"{PAID_TWICE}: this payment is to be refunded."
        attempt.save(update_fields=["status", "message"])
        logger.error("billing: invoice %s paid twice (attempt %s); refund it", invoice.number, attempt.pk)
        return "duplicate"
    if invoice.status == Invoice.Status.OPEN:
        invoice.status, invoice.paid_at, invoice.next_attempt_at = Invoice.Status.PAID, now, None
        invoice.save(update_fields=["status", "paid_at", "next_attempt_at"])
    audit_record(action="billing.invoice_paid", target=invoice,
                 data={"invoice": invoice.number, "amount": attempt.amount, "attempt": attempt.pk})
    _reactivate_if_settled(invoice.shop, now=now)
    _mail(invoice.shop, f"Payment received for {invoice.number}",
          f"Thank you: {format_minor(attempt.amount, attempt.currency)} received for invoice {invoice.number}.")
    return "paid"


def _reactivate_if_settled(shop, *, now) -> None:
    still_open = Invoice.objects.filter(shop=shop, kind=Invoice.Kind.INVOICE, status=Invoice.Status.OPEN,
                                        due_at__lte=now - timedelta(days=min(settings.KAMENG_BILLING_RETRY_DAYS)))
    subscription = Subscription.objects.select_for_update().select_related("shop", "plan").filter(shop=shop).first()
    if subscription is None or subscription.status not in (S.PAST_DUE, S.SUSPENDED) or still_open.exists():
        return
    subscription_transition(subscription=subscription, to=S.ACTIVE, kind="subscription.reactivated",
                            reason="Overdue invoices paid.", now=now)


def collection_refresh(*, attempt: CollectionAttempt) -> str:
    """Ask the gateway about a pending attempt (a webhook may have been lost)."""
    if attempt.status != CollectionAttempt.Status.PENDING or not attempt.external_id:
        return attempt.status
    outcome = billing_gateway().fetch_status(attempt)
    if outcome.status == "pending":
        return "pending"
    return collection_record_event(event=GatewayEvent(
        event_id=f"poll-{attempt.pk}", kind=f"payment.{outcome.status}", payment_reference=str(attempt.pk),
        external_id=outcome.external_id, amount=outcome.amount, currency=outcome.currency))


def collection_poll_pending(*, older_than_minutes: int = 5, now: datetime | None = None) -> int:
    """Beat: ask the gateway about attempts still pending (a webhook that never came)."""
    now = now or timezone.now()
    settled = 0
    pending = CollectionAttempt.objects.filter(status=CollectionAttempt.Status.PENDING, invoice__status="open",
                                               created_at__lte=now - timedelta(minutes=older_than_minutes),
                                               created_at__gte=now - timedelta(days=2)).exclude(external_id="")
    for attempt in pending.select_related("invoice")[:200]:
        try:
            settled += collection_refresh(attempt=attempt) in ("paid", "failed")
        except Exception as exc:  # noqa: BLE001 - one unreachable gateway call must not stop the rest
            logger.warning("billing: polling attempt %s failed: %s", attempt.pk, getattr(exc, "message", exc))
    return settled


# --- dunning -------------------------------------------------------------------------

def _schedule(invoice: Invoice) -> list[datetime]:
    """When collection is tried: at issue, then KAMENG_BILLING_RETRY_DAYS after the due date."""
    return [invoice.due_at] + [invoice.due_at + timedelta(days=d) for d in settings.KAMENG_BILLING_RETRY_DAYS]


def _dunning_step(invoice: Invoice, now: datetime) -> str:
    shop = invoice.shop
    schedule = _schedule(invoice)
    step = invoice.attempt_count  # 0: at issue, 1..n: retries
    due = amount_due(invoice)
    gateway = billing_gateway()
    # providers with a stored payment method charge here; hosted-page ones (the sandbox) return None
    event, note = None, ""
    if due > 0:
        attempt = CollectionAttempt.objects.create(invoice=invoice, provider=gateway.slug, amount=due,
                                                   currency=invoice.currency)
        try:
            event = gateway.execute(attempt)
        except Exception as exc:  # noqa: BLE001 - a gateway failure is a failed attempt, not a crash
            attempt.message = str(getattr(exc, "message", exc))[:300]
            note = f"We could not charge your saved card: {attempt.message}\n"
        if event is not None and event.kind == "payment.pending":  # the card charge settles later
            attempt.external_id = event.external_id[:120]
            attempt.save(update_fields=["external_id"])
        elif event is None:
            attempt.status, attempt.finished_at = CollectionAttempt.Status.FAILED, now
            attempt.message = attempt.message or "No stored payment method: the owner was asked to pay online."
            attempt.save(update_fields=["status", "finished_at", "message"])
            invoice.last_attempt_error = attempt.message
    invoice.attempt_count = step + 1
    invoice.last_attempt_at = now
    invoice.next_attempt_at = schedule[step + 1] if step + 1 < len(schedule) else None
    invoice.save(update_fields=["attempt_count", "last_attempt_at", "next_attempt_at", "last_attempt_error"])
    if event is not None and event.kind == "payment.succeeded":
        return collection_record_event(event=event)
    if event is not None:  # pending: the poller or the provider's webhook settles it
        return "pending"
    amount = format_minor(due, invoice.currency)
    suspend_on = invoice.due_at + timedelta(days=settings.KAMENG_BILLING_GRACE_DAYS)
    if step == 0:
        from billing.pdf import render_invoice_pdf

        _mail(shop, f"Invoice {invoice.number}: {amount}",
              f"Your Kameng invoice {invoice.number} for {amount} is ready (PDF attached). {note}"
              f"Pay it here: {_billing_page(shop)}", attachment=(f"{invoice.number}.pdf", render_invoice_pdf(invoice)))
        return "issued"
    subscription = Subscription.objects.select_for_update().select_related("shop", "plan").filter(shop=shop).first()
    if subscription is not None and subscription.status in (S.ACTIVE, S.TRIAL):
        subscription_transition(subscription=subscription, to=S.PAST_DUE, kind="subscription.past_due",
                                reason=f"Invoice {invoice.number} is unpaid.", now=now)
    final = step + 1 >= len(schedule)
    _mail(shop, f"{'Final reminder' if final else 'Reminder'}: invoice {invoice.number} is unpaid",
          f"Invoice {invoice.number} for {amount} is still open. {note}Pay it here: {_billing_page(shop)}\n"
          f"If it is still unpaid on {timezone.localtime(suspend_on):%Y-%m-%d}, the shop will be suspended "
          "until it is paid.")
    return "reminded"


def dunning_run(now: datetime | None = None) -> dict[str, int]:
    """Beat job: every due collection step, then suspension after the grace period.
    Rows are locked (SKIP LOCKED) and moved forward in the same transaction, so a
    second run at the same time or later does nothing twice."""
    now = now or timezone.now()
    done = {"steps": 0, "suspended": 0}
    due_ids = list(Invoice.objects.filter(kind=Invoice.Kind.INVOICE, status=Invoice.Status.OPEN,
                                          next_attempt_at__lte=now).values_list("pk", flat=True))
    for pk in due_ids:
        with transaction.atomic():
            invoice = (Invoice.objects.select_for_update(skip_locked=True).select_related("shop")
                       .filter(pk=pk, status=Invoice.Status.OPEN, next_attempt_at__lte=now).first())
            if invoice is None:
                continue
            _dunning_step(invoice, now)
            done["steps"] += 1
    grace = timedelta(days=settings.KAMENG_BILLING_GRACE_DAYS)
    overdue_shops = set(Invoice.objects.filter(kind=Invoice.Kind.INVOICE, status=Invoice.Status.OPEN,
                                               due_at__lte=now - grace).values_list("shop_id", flat=True))
    for subscription_id in list(Subscription.objects.filter(shop_id__in=overdue_shops, status=S.PAST_DUE)
                                .values_list("pk", flat=True)):
        with transaction.atomic():
            subscription = (Subscription.objects.select_for_update(skip_locked=True).select_related("shop", "plan")
                            .filter(pk=subscription_id, status=S.PAST_DUE).first())
            if subscription is None:
                continue
            subscription_transition(subscription=subscription, to=S.SUSPENDED, kind="subscription.suspended",
                                    reason="Invoices unpaid after the grace period.", now=now)
            _mail(subscription.shop, "Your shop is suspended",
                  f"Your shop is suspended because an invoice is unpaid. Paying it reactivates the shop at once: "
                  f"{_billing_page(subscription.shop)}")
            done["suspended"] += 1
    return done
