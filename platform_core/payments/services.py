"""The payments core: start a payment with a provider, record verified gateway events
idempotently, refund. Providers talk to gateways; this module persists, under locks."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from platform_core.cache import forget_now_and_on_commit
from platform_core.db.rows import (batched_writes, insert_row, insert_row_alongside, insert_row_locking_joined,
                                   insert_rows, new_row, related_rows, related_rows_sql, remember_related,
                                   select_joined, update_row)
from platform_core.orders.models import Order, OrderLine
from platform_core.payments.models import Payment, PaymentMethodFee, Refund, WebhookEvent
from platform_core.payments.selectors import fee_quote, forget_fee_rules, payment_fee_rules, payment_plugin_class
from plugins.hooks import enabled_plugins
from plugins.base import MAIN_ACCOUNT
from plugins.payment import (
    GatewayEvent,
    PaymentAction,
    PaymentDeclined,
    PaymentError,
    PaymentMisconfigured,
    PaymentPlugin,
    PaymentRetryable,
)

logger = logging.getLogger(__name__)


#: order statuses a payment's success still applies to (paid, or revived when late)
PAYABLE_STATUSES = (Order.Status.PENDING_PAYMENT, Order.Status.EXPIRED, Order.Status.CANCELLED)


class UnknownProvider(LookupError):
    pass


class FeeError(Exception):
    """A fee rule refused; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str = "", code: str = "invalid", status: int = 400):
        super().__init__(message)
        self.message, self.field, self.code, self.status = message, field, code, status


class EventNotReady(Exception):
    """The event is genuine but comes before the one it depends on (a refund before the
    payment's success): nothing is stored, the gateway is asked to send it again."""


def payment_providers(order: Order | None = None) -> list[PaymentPlugin]:
    """Payment plugins enabled in the current shop (and allowed for ``order``)."""
    providers = [p for p in enabled_plugins() if isinstance(p, PaymentPlugin)]
    if order is not None:
        providers = [p for p in providers if p.is_allowed(order)]
        if order.kind == Order.Kind.WALLET_TOPUP:
            providers = [p for p in providers if p.can_top_up_wallet]
    return providers


def provider_for(slug: str, order: Order | None = None) -> PaymentPlugin:
    for provider in payment_providers(order):
        if provider.slug == slug:
            return provider
    raise UnknownProvider(f"The payment method {slug!r} is not available here.")


def account_notify_url(notify_url: str, account: str) -> str:
    """Where a merchant account's gateway sends its webhooks: the provider's hook URL
    for the main account (as before accounts existed), ``<hook URL><account>/`` for the
    others, so each webhook is verified with its own account's secret (decision 0029)."""
    if account == MAIN_ACCOUNT or not notify_url.endswith("/"):
        return notify_url
    return f"{notify_url}{account}/"


def _failure_kind(exc: PaymentError) -> str:
    """How a start failed, in a word kept on the payment (never the message: staff words)."""
    if isinstance(exc, PaymentMisconfigured):
        return "misconfigured"
    if isinstance(exc, PaymentDeclined):
        return "declined"
    return "retryable" if exc.retryable else "refused"


def _fails_over(exc: PaymentError) -> bool:
    # the gateway is down or refuses this account: the next account may take it. A
    # decline is about the buyer's card or balance: another merchant would decline too.
    if isinstance(exc, PaymentDeclined):
        return False
    return exc.retryable or isinstance(exc, PaymentMisconfigured)


@dataclass(frozen=True)
class GatewayAddresses:
    """What a gateway is told when a payment starts: where the buyer comes back to, and
    the provider's webhook address (each merchant account gets its own, decision 0029)."""

    return_url: str
    notify_url: str


@dataclass
class PreparedPayment:
    """A pending payment written (:func:`payment_prepare`); ``started`` when its gateway
    was asked already (the account that took it and the answer), ``failure`` when no
    account took it (the payment is written failed, the error raised by payment_start)."""

    provider: PaymentPlugin
    candidates: list[PaymentPlugin]  # the merchant accounts to try, in order
    payment: Payment
    started: tuple[PaymentPlugin, PaymentAction] | None = None
    failure: PaymentError | None = None
    addresses: GatewayAddresses | None = None  # what the gateway was told, when it was asked


def payment_prepare(*, order: Order, provider_slug: str, placed_now: bool = False,
                    key: int | None = None, ask_gateway: GatewayAddresses | None = None) -> PreparedPayment:
    """Inside a transaction: check ``provider_slug`` can take ``order`` and write its
    pending payment. ``placed_now``: the order was placed in this same transaction
    (order_place's ``within_transaction``), so nobody else can see it yet: it needs no
    lock and no re-reading, and the payment commits or rolls back with it. ``key``: the
    payment's primary key, taken in advance (order_place's ``within_transaction_keys``):
    inside ``batched_writes`` its INSERT is held and goes with the next statement.

    ``ask_gateway`` (with ``key``): ask the gateway before the payment is written, so its row
    is written once, with the gateway's id or as failed (decision 0053): no UPDATE of it
    after the call. A failure is kept on the result, not raised: the order stands."""
    if ask_gateway is not None and key is None:
        raise ValueError("a payment started while it is prepared needs its key in advance")
    provider = provider_for(provider_slug, order)
    candidates = provider.accounts_to_try()
    if not candidates:
        raise PaymentMisconfigured(f"{provider.name} has no enabled merchant account; enable one in the shop console.")
    if placed_now:
        locked = order
        rule = payment_fee_rules().get(provider.slug)
    else:
        # the order locked, and the shop's fee rule for the method read with it
        locked, rule = select_joined((Order, PaymentMethodFee),
                                     "LEFT JOIN payments_paymentmethodfee t1 ON t1.provider = %s", "t0.id = %s",
                                     [provider.slug, order.pk], suffix="ORDER BY t1.id LIMIT 1 FOR UPDATE OF t0") \
            or (None, None)
    if locked is None:
        raise PaymentError("This order does not exist any more.")
    if locked.status != Order.Status.PENDING_PAYMENT:
        raise PaymentError("This order is not waiting for payment any more.")
    if locked.reserved_until and locked.reserved_until < timezone.now():
        raise PaymentError("The reservation of this order ran out; place the order again.")
    # the fee is the shop's rule of this moment, never the buyer's say (decision 0025)
    quote = fee_quote(provider=provider, order_total=locked.total, rules={provider.slug: rule} if rule else {})
    payment = new_row(Payment, order=locked, provider=provider.slug, account=candidates[0].account_key,
                      amount=quote.amount, currency=locked.currency, fee=quote.fee,
                      fee_paid_by_buyer=quote.passed_to_buyer)
    if key is None:
        insert_row(payment)
        return PreparedPayment(provider, candidates, payment)
    payment.pk = key
    prepared = PreparedPayment(provider, candidates, payment, addresses=ask_gateway)
    if ask_gateway is not None:
        try:
            prepared.started = _start_with_accounts(locked, payment, candidates, ask_gateway, written=False)
        except PaymentError as exc:
            prepared.failure = exc
        else:
            payment.external_id = prepared.started[1].external_id or payment.external_id
    insert_rows([payment], keyed=True)
    return prepared


def _start_with_accounts(order: Order, payment: Payment, candidates: list[PaymentPlugin],
                         addresses: GatewayAddresses, *, written: bool) -> tuple[PaymentPlugin, PaymentAction]:
    """Ask the merchant accounts in priority order until one takes ``payment``; returns
    that account's provider and its answer. The payment records the account that took
    it and, after a fail-over, the accounts tried. When none takes it, the payment is
    marked failed (``data["attempts"]``) and the error is raised. ``written``: the
    payment's row exists and these changes are saved; otherwise they stay on the
    instance for its INSERT."""
    attempts: list[dict] = []
    for number, bound in enumerate(candidates, start=1):
        if payment.account != bound.account_key:
            payment.account = bound.account_key
            if written:
                payment.save(update_fields=["account"])
        try:
            action = bound.start(order, payment, return_url=addresses.return_url,
                                 notify_url=account_notify_url(addresses.notify_url, bound.account_key))
        except PaymentError as exc:
            attempts.append({"account": bound.account_key, "error": _failure_kind(exc)})
            if _fails_over(exc) and number < len(candidates):
                logger.warning("payment %s: %s account %s failed (%s); trying the next account", payment.pk,
                               payment.provider, bound.account_key, attempts[-1]["error"])
                continue
            _payment_start_failed(payment, attempts, written=written)
            if len(attempts) > 1 and any(a["error"] == "retryable" for a in attempts) and not exc.retryable:
                raise PaymentRetryable() from None  # some gateway was only down: trying later may work
            raise
        if attempts:
            payment.data = {**payment.data, "attempts": attempts}
            if written:
                payment.save(update_fields=["data"])
        return bound, action
    raise PaymentMisconfigured("No merchant account to start the payment with.")  # candidates is never empty


def payment_start(*, order: Order, provider_slug: str, return_url: str, notify_url: str,
                  prepared: PreparedPayment | None = None) -> tuple[Payment, PaymentAction]:
    """Create a pending payment and ask the provider how the buyer pays. Instant
    providers (wallet) complete it right here. ``prepared``: the payment
    :func:`payment_prepare` wrote (and committed) already; when its gateway was asked
    then, it is not asked again.

    A provider with several merchant accounts tries them in priority order and moves on
    to the next one when a gateway is down or refuses an account's credentials; the
    payment records the account that took it. When no account takes it, the payment is
    marked failed (its ``data["attempts"]`` says which accounts were tried and why) and
    the error is raised: the last one's, retryable if any gateway was only down."""
    if prepared is None:
        with transaction.atomic():
            prepared = payment_prepare(order=order, provider_slug=provider_slug)
    provider, payment = prepared.provider, prepared.payment
    if prepared.failure is not None:
        raise prepared.failure
    if prepared.started is not None:
        bound, action = prepared.started
    else:
        bound, action = _start_with_accounts(order, payment, prepared.candidates,
                                             GatewayAddresses(return_url, notify_url), written=True)
        if action.external_id and not payment.external_id:
            payment.external_id = action.external_id
            update_row(payment, ["external_id"])
    if action.kind == "instant":
        event = bound.execute(payment)
        if event is not None:
            record_event(provider=provider.slug, event=event, account=bound.account_key)
    return payment, action


def _payment_start_failed(payment: Payment, attempts: list[dict], *, written: bool) -> None:
    # the buyer got an error and starts again with a new payment; this one took nothing
    payment.status, payment.data = Payment.Status.FAILED, {**payment.data, "attempts": attempts}
    if written:
        Payment.objects.filter(pk=payment.pk, status=Payment.Status.PENDING).update(
            status=Payment.Status.FAILED, data=payment.data)


def provider_account(provider: PaymentPlugin, account: str) -> PaymentPlugin:
    """``provider`` bound to the merchant account that took a payment."""
    bound = provider.bound_to(account)
    if bound is None:
        raise PaymentMisconfigured(f"The {provider.name} account {account!r} that took this payment was removed; "
                                   f"add it again in the shop console to reach the gateway.")
    return bound


def record_event(*, provider: str, event: GatewayEvent, account: str = MAIN_ACCOUNT,
                 lock_timeout: str | None = None) -> str:
    """Apply one verified gateway event exactly once. In one transaction: the inbox
    row, the payment, the order and its keys. Returns what happened, in a word.

    ``account`` is the merchant account whose credentials verified the event: it may
    only move payments that account took ("account_mismatch" otherwise, nothing
    stored, so the genuine event still applies when it comes the right way).
    ``lock_timeout`` (e.g. "5s", only where no transaction is open yet: it holds for the
    rest of the transaction) bounds the wait for a row another request holds; past it
    the caller gets ``OperationalError`` and nothing is stored."""
    if event.kind == "ignored":
        return "ignored"
    try:
        with transaction.atomic(), batched_writes():
            inbox = new_row(WebhookEvent, provider=provider, account=account, event_id=event.event_id,
                            kind=event.kind, payload=event.raw)
            # the lock timeout is read first, so it bounds the waits for the order's lock
            # and for the inbox row of a parallel delivery of the same event
            first = ("SELECT set_config('lock_timeout', %s, true)", [lock_timeout]) if lock_timeout \
                else ("SELECT NULL", [])
            by_reference = _by_our_reference(provider, event)
            if by_reference is not None:  # the payment and its order locked by the inbox row's statement
                written, _, found = insert_row_locking_joined(inbox, *first, *PAYMENT_WITH_ORDER, *by_reference,
                                                              suffix=LOCK_PAYMENT_WITH_ORDER, ignore_conflicts=True,
                                                              extra=(_order_lines_sql(),))
            else:
                written, _ = insert_row_alongside(inbox, *first, ignore_conflicts=True)
                found = None
            if not written:
                return "duplicate"  # a replay, or a parallel delivery that won (it waited for that one)
            result, payment = _apply(provider, account, event, tried_reference=by_reference is not None,
                                     found=found)
            inbox.result, inbox.payment = result, payment
            update_row(inbox, ["result", "payment"])
            return result
    except EventNotReady as exc:
        # rolled back, inbox row included, so the re-sent event is applied when it fits
        logger.info("gateway event %s/%s deferred: %s", provider, event.event_id, exc)
        return "deferred"
    except AccountMismatch as exc:
        logger.warning("gateway event %s/%s refused: %s", provider, event.event_id, exc)
        return "account_mismatch"
    except IntegrityError:
        if WebhookEvent.objects.filter(provider=provider, account=account, event_id=event.event_id).exists():
            return "duplicate"  # a replay, or a parallel delivery that won
        raise


class AccountMismatch(Exception):
    """A genuine event of one merchant account names a payment another account took."""


#: a payment read with its order: (models, joins), and the suffix that locks both
PAYMENT_WITH_ORDER = ((Order, Payment), "JOIN payments_payment t1 ON t1.order_id = t0.id")
# one statement; FOR UPDATE locks a joined row's tables in FROM order: the order first
LOCK_PAYMENT_WITH_ORDER = "ORDER BY t1.id LIMIT 1 FOR UPDATE"


@functools.cache
def _order_lines_sql() -> str:
    """The locked order's lines, read by the same statement (``extra``). They are read on
    that statement's snapshot, which may predate a transaction that held the order's lock
    and changed its lines (a delivery): such an order has moved on from waiting for
    payment, and ``order_mark_paid`` then returns without reading them. The lines of an
    order still waiting for payment change with nobody."""
    return related_rows_sql(OrderLine, "order_id", "t0.id")


def _by_our_reference(provider: str, event: GatewayEvent) -> tuple[str, list] | None:
    """The condition finding the payment the event names by our reference (its id)."""
    if event.payment_reference.isdigit() and 0 < int(event.payment_reference) < 2**63:
        return "t1.id = %s AND t1.provider = %s", [int(event.payment_reference), provider]
    return None


def _payment_for(provider: str, account: str, event: GatewayEvent, *, tried_reference: bool = False,
                 found: tuple | None = None) -> Payment | None:
    """The payment the event names, locked with its order (the order first, as refunds
    lock them), by our reference or else by the gateway's id. ``tried_reference``: the
    reference was looked up already (with the inbox row), ``found`` is what it found."""
    candidates = []
    if not tried_reference and (by_reference := _by_our_reference(provider, event)) is not None:
        candidates.append(by_reference)
    if event.external_id:
        candidates.append(("t1.provider = %s AND t1.account = %s AND t1.external_id = %s",
                           [provider, account, event.external_id]))
    for where, params in candidates:
        if found is not None:
            break
        found = select_joined(*PAYMENT_WITH_ORDER, where, params, suffix=LOCK_PAYMENT_WITH_ORDER)
    payment = None
    if found is not None:
        order, payment, *lines = found
        payment.order = order
        if lines:  # read with the lock (_order_lines_sql): order_mark_paid need not ask again
            remember_related(order, lines=related_rows(OrderLine, lines[0]))
    if payment is not None and payment.account != account:
        raise AccountMismatch(f"payment {payment.pk} was taken by account {payment.account!r}, "
                              f"the event was verified for {account!r}")
    return payment


def _apply(provider: str, account: str, event: GatewayEvent, *, tried_reference: bool = False,
           found: tuple | None = None) -> tuple[str, Payment | None]:
    """What the event did, in a word, and the payment it names."""
    payment = _payment_for(provider, account, event, tried_reference=tried_reference, found=found)
    return _apply_to(payment, provider, event), payment


def _apply_to(payment: Payment | None, provider: str, event: GatewayEvent) -> str:
    from platform_core.orders.services import order_mark_paid, order_refund_recorded_outside

    if payment is None:
        logger.warning("gateway event %s/%s names no payment of ours", provider, event.event_id)
        return "unknown_payment"
    order = payment.order  # locked with the payment (_payment_for)
    if event.kind == "payment.succeeded":
        if event.amount != payment.amount or event.currency.upper() != payment.currency:
            logger.error("payment %s: gateway says %s %s, we expect %s %s", payment.pk, event.amount,
                         event.currency, payment.amount, payment.currency)
            return "amount_mismatch"
        if payment.status == Payment.Status.SUCCEEDED:
            return "already_succeeded"
        if event.external_id and payment.external_id and event.external_id != payment.external_id:
            logger.error("payment %s: event names gateway payment %s, ours is %s", payment.pk, event.external_id,
                         payment.external_id)
            return "external_id_mismatch"
        if event.external_id and not payment.external_id:
            payment.external_id = event.external_id
        # a payment that succeeded marked its order paid in the same transaction, so an
        # order still waiting for payment has none: ask only about orders that moved on
        if order.status not in PAYABLE_STATUSES and \
                order.payments.filter(status=Payment.Status.SUCCEEDED).exclude(pk=payment.pk).exists():
            # paid twice (two tabs, two methods): keep the first, give this one back
            payment.status, payment.succeeded_at = Payment.Status.DUPLICATE, timezone.now()
            payment.save()
            transaction.on_commit(lambda: _refund_duplicate(payment.pk))
            return "duplicate_payment_refunded"
        payment.status, payment.succeeded_at = Payment.Status.SUCCEEDED, timezone.now()
        update_row(payment, ["status", "succeeded_at", "external_id"])
        order_mark_paid(order=order, payment=payment)
        return "paid"
    if event.kind == "payment.failed":
        if payment.status == Payment.Status.PENDING:
            payment.status = Payment.Status.FAILED
            payment.save(update_fields=["status"])
        return "failed"
    if event.kind == "refund.succeeded":
        if payment.status not in (Payment.Status.SUCCEEDED, Payment.Status.DUPLICATE):
            # gateways do not keep events in order: the success is still on its way
            raise EventNotReady(f"refund for payment {payment.pk} before its success")
        refund = payment.refunds.filter(external_id=event.refund_external_id).first() if event.refund_external_id \
            else None
        if refund is not None:
            if refund.status != Refund.Status.SUCCEEDED:
                refund.status = Refund.Status.SUCCEEDED
                refund.save(update_fields=["status"])
            return "refund_confirmed"
        # a refund made at the gateway, outside Kameng
        order_refund_recorded_outside(order=order, payment=payment, amount=event.amount,
                                      external_id=event.refund_external_id)
        return "refund_recorded"
    return "ignored"


def _refund_duplicate(payment_id: int) -> None:
    payment = Payment.objects.get(pk=payment_id)
    with transaction.atomic():
        Order.objects.select_for_update().get(pk=payment.order_id)
        payment_refund(payment=payment, amount=payment.amount - payment.refunded_amount,
                       reason="Paid twice: the second payment is returned.", actor="system")


def payment_refund(*, payment: Payment, amount: int, reason: str, actor: str) -> Refund:
    """Refund through the provider that took the payment (caller holds the order lock)."""
    from plugins.registry import get_plugin_class

    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    left = payment.amount - payment.refunded_amount
    if amount <= 0 or amount > left:
        raise PaymentError("Refund exceeds what is left on this payment.")
    if 0 < left - amount < payment.buyer_fee:
        # decision 0027: the buyer's fee goes back only with the last of the payment
        raise PaymentError("A partial refund cannot include the payment fee; the fee is returned only with "
                           "a full refund.")
    provider_class = get_plugin_class(payment.provider)
    from plugins.models import PluginConfig

    provider = provider_class(connection.tenant, PluginConfig.objects.filter(slug=payment.provider).first())
    provider = provider_account(provider, payment.account)  # the account that took the money gives it back
    refund = Refund.objects.create(payment=payment, amount=amount, reason=reason, created_by=actor)
    outcome = provider.refund(payment, amount)
    if not outcome.succeeded and not outcome.pending:
        raise PaymentError(outcome.message or "The payment provider refused the refund.")
    refund.status = Refund.Status.SUCCEEDED if outcome.succeeded else Refund.Status.PENDING
    refund.external_id = outcome.external_id
    refund.save(update_fields=["status", "external_id"])
    payment.refunded_amount += amount
    payment.save(update_fields=["refunded_amount"])
    return refund


def payment_method_fee_set(*, provider_slug: str, fixed: int, basis_points: int, passed_to_buyer: bool,
                           actor=None, request=None) -> PaymentMethodFee:
    """Set the shop's fee for one payment method (owners and admins; the caller checks the
    role). Audited with the rule before and after."""
    from platform_core.audit.services import audit_record

    provider_class = payment_plugin_class(provider_slug)
    if provider_class is None:
        raise FeeError(f"There is no payment method {provider_slug!r}.", field="provider", code="unknown_provider",
                       status=404)
    if not provider_class.takes_fees():
        raise FeeError(f"{provider_class.name} carries no payment fee: it moves money inside the shop.",
                       field="provider", code="no_fees")
    for name, value in (("fixed", fixed), ("basis_points", basis_points)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise FeeError(f"{name} must be a whole number.", field=name)
    if not 0 <= fixed <= PaymentMethodFee.MAX_FIXED:
        raise FeeError(f"The fixed fee must be between 0 and {PaymentMethodFee.MAX_FIXED} minor units.",
                       field="fixed")
    if not 0 <= basis_points <= PaymentMethodFee.MAX_BASIS_POINTS:
        raise FeeError(f"The percentage must be between 0 and {PaymentMethodFee.MAX_BASIS_POINTS} basis points "
                       f"({PaymentMethodFee.MAX_BASIS_POINTS // 100} %).", field="basis_points")
    if not isinstance(passed_to_buyer, bool):
        raise FeeError("passed_to_buyer must be true or false.", field="passed_to_buyer")
    actor_name = getattr(actor, "email", "") or str(actor or "")
    with transaction.atomic():
        rule = PaymentMethodFee.objects.select_for_update().filter(provider=provider_slug).first()
        before = None if rule is None else {"fixed": rule.fixed, "basis_points": rule.basis_points,
                                            "passed_to_buyer": rule.passed_to_buyer}
        rule = rule or PaymentMethodFee(provider=provider_slug)
        rule.fixed, rule.basis_points, rule.passed_to_buyer = fixed, basis_points, passed_to_buyer
        rule.updated_at, rule.updated_by = timezone.now(), actor_name
        rule.save()
        forget_now_and_on_commit(forget_fee_rules)
        audit_record(action="payment_fee.changed", actor=actor if hasattr(actor, "pk") else None, target=rule,
                     request=request, data={"provider": provider_slug, "before": before,
                                            "after": {"fixed": fixed, "basis_points": basis_points,
                                                      "passed_to_buyer": passed_to_buyer}})
    return rule


def _poll_payment(payment: Payment) -> str | None:
    """Ask the gateway about one pending payment and record what it says (a lost or slow
    webhook); the event id is stable so a poll and a webhook never count twice."""
    try:
        provider = provider_account(provider_for(payment.provider), payment.account)
        status = provider.fetch_status(payment)
    except (UnknownProvider, PaymentError, OperationalError) as exc:
        logger.warning("could not poll payment %s: %s", payment.pk, exc)
        return None
    if status.status not in ("succeeded", "failed"):
        return None
    return record_event(provider=payment.provider, account=payment.account, event=GatewayEvent(
        event_id=f"poll:{payment.pk}:{status.status}", kind=f"payment.{status.status}",
        payment_reference=str(payment.pk), external_id=status.external_id, amount=status.amount,
        currency=status.currency, raw={"source": "poll"}))


def payments_poll_pending(*, older_than_minutes: int = 5) -> int:
    """Beat job: ask the gateway about payments stuck in pending (a lost webhook)."""
    from datetime import timedelta

    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    fixed = 0
    for payment in Payment.objects.filter(status=Payment.Status.PENDING, created_at__lt=cutoff,
                                          created_at__gt=cutoff - timedelta(days=2)).select_related("order"):
        fixed += _poll_payment(payment) == "paid"
    return fixed


#: a buyer waiting on the order page asks the gateways at most this often
CHECK_INTERVAL_SECONDS = 10


def payments_check_order(*, order_id: int) -> int:
    """Ask the gateways about one order's pending payments now (task; see
    ``payments_request_check``). Returns how many were found paid."""
    from datetime import timedelta

    since = timezone.now() - timedelta(days=2)
    payments = Payment.objects.filter(order_id=order_id, status=Payment.Status.PENDING, created_at__gt=since) \
        .exclude(external_id__isnull=True).exclude(external_id="").select_related("order")
    return sum(_poll_payment(payment) == "paid" for payment in payments)


def payments_request_check(*, order_number: str) -> bool:
    """The buyer is back from the gateway's page and waiting: have a worker ask the
    gateway (PayPal captures an approved order then) instead of waiting for the webhook
    or the five-minute poller. Throttled per order; never blocks the request."""
    from django.core.cache import cache

    from platform_core.orders.tasks import check_order_payments

    # the throttle first: the page polls every second, the database is asked once per interval
    if not cache.add(f"payments:check:{order_number}", 1, CHECK_INTERVAL_SECONDS):
        return False
    order_id = Order.objects.filter(number=order_number, status=Order.Status.PENDING_PAYMENT,
                                    payments__status=Payment.Status.PENDING).values_list("pk", flat=True).first()
    if order_id is None:
        return False
    transaction.on_commit(lambda: check_order_payments.delay(order_id))
    return True
