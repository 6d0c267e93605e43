"""Checkout, the order state machine, allocation and delivery of keys, refunds, tickets.

Allocation is one SQL statement per line with ``FOR UPDATE SKIP LOCKED`` over the
partial index of available keys; every key is bound to an order line by a database
constraint (``key_delivered_once``), so a key can never be sold twice.
"""
from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.utils import timezone

from billing.limits import limit_refusal
from platform_core.audit.services import audit_record
from platform_core.db.cursors import statement_cursor
from platform_core.db.rows import (batched_writes, insert_row, insert_row_alongside, insert_rows, new_key_sql,
                                   new_keys_sql, new_row, select_joined, select_rows, update_row, with_held_writes)
from platform_core.money import format_minor
from platform_core.catalog.models import SKU, Product
from platform_core.inventory.models import CardKey, DeliveredKey
from platform_core.inventory.stock import LOW_STOCK_DUE_SQL, KeyCipher, adjust_counts, adjust_counts_held
from platform_core.orders.models import (Order, OrderEvent, OrderLine, OrderSettings, PendingOrderEmail, Ticket,
                                         TicketMessage)
from platform_core.orders.query_passwords import check_query_password, hash_query_password, spend_equal_time
from plugins import hooks

logger = logging.getLogger(__name__)

MAX_LINES = 20
MAX_QUANTITY = 1000
PHONE_RE = re.compile(r"^\+?[0-9]{6,15}$")
# SQL for a SKU's issue order (a fixed vocabulary, never user input); by age, the order of
# the cardkey_by_sku_status index (decision 0041)
ISSUE_ORDER_SQL = {"oldest": "created_at, id", "newest": "created_at DESC, id DESC", "random": "random()"}

S = Order.Status
ALLOWED = {
    S.PENDING_PAYMENT: {S.PAID, S.EXPIRED, S.CANCELLED},
    S.EXPIRED: {S.PAID},  # a late payment revives the order (or is refunded)
    S.CANCELLED: {S.PAID},
    S.PAID: {S.DELIVERED, S.AWAITING_STOCK, S.PROCESSING, S.REFUNDED, S.COMPLETED},
    S.AWAITING_STOCK: {S.DELIVERED, S.REFUNDED, S.PROCESSING},
    S.PROCESSING: {S.DELIVERED, S.REFUNDED, S.COMPLETED},
    S.DELIVERED: {S.COMPLETED, S.REFUNDED},
    S.COMPLETED: {S.REFUNDED},
    S.REFUNDED: set(),
}


class OrderError(Exception):
    """Checkout or order change refused; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str = "", code: str = "invalid", status: int = 400,
                 line: int | None = None):
        super().__init__(message)
        self.message, self.field, self.code, self.status = message, field, code, status
        self.line = line  # index of the order line at fault, when it is one line's


# --- pricing -------------------------------------------------------------------------

#: the unit price of the best wholesale tier of a SKU for a quantity (NULL: none applies)
WHOLESALE_TIER_SQL = ("(SELECT unit_price FROM catalog_wholesaleprice WHERE min_quantity <= %s AND sku_id = {sku} "
                      "ORDER BY min_quantity DESC LIMIT 1)")


def unit_price_for(*, sku: SKU, quantity: int, customer=None) -> int:
    """Base price → wholesale tier → plugin adjustments (tier prices, …): server side only."""
    price = sku.price
    read = getattr(sku, "wholesale_read", None)  # (quantity, tier price), read with the SKU at checkout
    if read is not None and read[0] == quantity:
        tier = read[1]
    else:
        with statement_cursor() as cursor:
            cursor.execute(f"SELECT {WHOLESALE_TIER_SQL.format(sku='%s')}", [quantity, sku.pk])
            tier = cursor.fetchone()[0]
    if tier is not None:
        price = min(price, tier)
    price = hooks.pipeline("price_adjust", price, sku=sku, customer=customer, quantity=quantity)
    return max(int(price), 0)


# --- checkout ------------------------------------------------------------------------

@dataclass
class LineRequest:
    sku_id: int
    quantity: int
    account: str = ""


def _validate_contact(contact: str) -> tuple[str, str]:
    contact = (contact or "").strip()
    if "@" in contact:
        try:
            validate_email(contact)
        except ValidationError:
            raise OrderError("Enter a valid e-mail address or phone number.", field="contact") from None
        return contact.lower(), contact.lower()
    compact = re.sub(r"[\s-]", "", contact)
    if not PHONE_RE.match(compact):
        raise OrderError("Enter a valid e-mail address or phone number.", field="contact")
    return compact, ""


def _new_number() -> str:
    # date for people, then 9 random digits: a collision needs ~30,000 orders in one second,
    # and the unique constraint turns one into a retry (order_place)
    return timezone.now().strftime("%y%m%d%H%M%S") + f"{secrets.randbelow(10**9):09d}"


def _claim_free_keys(sku: SKU, quantity: int, assignments: str, params: list, *,
                     counted_as: str | None = None) -> list[int]:
    """Update up to ``quantity`` free keys of ``sku`` in its issue order with ``assignments``
    and return their ids. The pick is a MATERIALIZED CTE so it runs exactly once: a
    rescanned ``id IN (SELECT … FOR UPDATE SKIP LOCKED)`` (nested-loop plans) skips the rows
    the same statement just updated and would hand the whole stock to one order.
    ``counted_as`` (a SKU counter column) moves the claimed keys from the SKU's available
    count to that one in the same statement, as :func:`adjust_counts` would.

    The quantity is written into the statement, not passed as a parameter: a generic plan
    of "LIMIT $n" must guess how many keys are taken, so PostgreSQL planned the prepared
    claim afresh for every order (half a millisecond of database CPU, more than running it).
    One text per quantity keeps one plan per connection."""
    count_move = "" if counted_as is None else f""", counted AS (
                UPDATE catalog_sku SET available_count = available_count - (SELECT count(*) FROM claimed),
                    {counted_as} = {counted_as} + (SELECT count(*) FROM claimed)
                WHERE id = %s AND EXISTS (SELECT 1 FROM claimed))"""
    with statement_cursor() as cursor:
        cursor.execute(*with_held_writes(
            f"""WITH picked AS MATERIALIZED (
                    SELECT id FROM inventory_cardkey WHERE sku_id = %s AND status = 'available' AND NOT is_loop
                    ORDER BY {ISSUE_ORDER_SQL[sku.issue_order]} LIMIT {int(quantity):d} FOR UPDATE SKIP LOCKED),
                claimed AS (UPDATE inventory_cardkey SET {assignments} FROM picked
                    WHERE inventory_cardkey.id = picked.id RETURNING inventory_cardkey.id){count_move}
                SELECT id FROM claimed""",
            [sku.pk, *params, *([sku.pk] if counted_as else [])],
            tables=("inventory_cardkey", "catalog_sku")))
        return [row[0] for row in cursor.fetchall()]


def _reserve(line: OrderLine, sku: SKU, quantity: int, until) -> int:
    """Reserve up to ``quantity`` keys for ``line`` (and count them as reserved); returns
    how many were reserved."""
    return len(_claim_free_keys(sku, quantity, "status = 'reserved', order_line_id = %s, reserved_until = %s",
                                [line.pk, until], counted_as="reserved_count"))


def _sku_for_sale(sku_id, quantity: int) -> SKU | None:
    """The active SKU ``sku_id`` of a visible product, with its product and its
    wholesale tier for ``quantity`` read in the same statement."""
    if not isinstance(sku_id, int) or isinstance(sku_id, bool) or not 0 < sku_id < 2**63:
        return None
    found = select_joined((SKU, Product), "JOIN catalog_product t1 ON t1.id = t0.product_id AND t1.is_visible",
                          "t0.id = %s AND t0.is_active", [quantity, sku_id],
                          extra=(WHOLESALE_TIER_SQL.format(sku="t0.id"),))
    if found is None:
        return None
    sku, sku.product, tier = found
    sku.wholesale_read = (quantity, tier)
    return sku


def _has_loop_key(sku: SKU) -> bool:
    return CardKey.objects.filter(sku=sku, status=CardKey.Status.AVAILABLE, is_loop=True).exists()


def order_place(*, lines: list[LineRequest], contact: str, query_password: str = "", customer=None,
                ip: str | None = None, idempotency_key: str | None = None, language: str = "zh-hans",
                actor: str = "", within_transaction: Callable[[Order, dict], None] | None = None,
                within_transaction_keys: tuple[type[Model], ...] = ()) -> Order:
    """Validate everything, reserve stock for the reservation window, create the order.

    ``idempotency_key`` returns the order made earlier with the same key; callers must
    namespace keys per channel and check the returned order belongs to the same buyer
    (the API and the storefront do). ``within_transaction(order, keys)`` runs once the
    order's row is written, before its stock is reserved and before it commits: what it
    writes commits or rolls back with the order (the API writes the order's payment
    there). ``keys`` holds a new primary key for each model of
    ``within_transaction_keys``, taken with the order's own INSERT: a row given its key
    in advance is held (``insert_rows(…, keyed=True)``) and goes to the database with
    the key claim instead of on its own. It is not called for an order the idempotency
    key found."""
    if idempotency_key:
        existing = Order.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    if not lines or len(lines) > MAX_LINES:
        raise OrderError(f"An order has 1 to {MAX_LINES} lines.", field="lines")
    contact_value, contact_email = _validate_contact(contact or (customer.email or customer.phone if customer else ""))
    if customer is None and len(query_password or "") < 4:
        raise OrderError("Choose a query password of at least 4 characters to look the order up later.",
                         field="query_password")
    resolved = []
    for index, request in enumerate(lines):
        if not isinstance(request.quantity, int) or isinstance(request.quantity, bool):
            raise OrderError("Quantity must be a whole number.", field="quantity", line=index)
        sku = _sku_for_sale(request.sku_id, request.quantity)
        if sku is None:
            raise OrderError("This product is not available.", field="sku", code="not_found", status=404,
                             line=index)
        product = sku.product
        if not product.min_quantity <= request.quantity <= min(product.max_quantity, MAX_QUANTITY):
            raise OrderError(f"Quantity must be between {product.min_quantity} and "
                             f"{min(product.max_quantity, MAX_QUANTITY)}.", field="quantity")
        if product.member_only and customer is None:
            raise OrderError("Sign in as a member to buy this product.", field="sku", code="members_only",
                             status=403)
        if product.type == Product.Type.CARD_KEY and sku.available_count <= 0:
            # no key at all (loop keys count as available): refuse before any lock or
            # transaction, so the crowd arriving after a flash sale sells out costs little
            raise OrderError("Sold out.", field="quantity", code="out_of_stock", status=409)
        account = (request.account or "").strip()
        if product.type == Product.Type.TOPUP:
            if not account or (product.account_pattern and not re.fullmatch(product.account_pattern, account)):
                raise OrderError(f"Enter a valid {product.account_label or 'account'}.", field="account")
        resolved.append((sku, request.quantity, account))

    with transaction.atomic(), batched_writes():
        if refusal := limit_refusal(connection.tenant, "monthly_orders", whose="This shop's"):
            raise OrderError(f"This shop cannot take more orders this month. {refusal}", code="plan_limit",
                             status=403)
        rules = _lock_open_orders(contact_value, ip)
        until = timezone.now() + timedelta(minutes=rules.reservation_minutes)
        subtotal = 0
        priced = []
        for sku, quantity, account in resolved:
            unit = unit_price_for(sku=sku, quantity=quantity, customer=customer)
            priced.append((sku, quantity, account, unit))
            subtotal += unit * quantity
        hashed_password = hash_query_password(query_password) if query_password else ""
        for attempt in range(3):
            order = new_row(
                Order,
                number=_new_number(), customer=customer, contact=contact_value, contact_email=contact_email,
                query_password=hashed_password, currency=getattr(connection.tenant, "currency", "CNY"),
                subtotal=subtotal, total=subtotal, idempotency_key=idempotency_key or None,
                access_token=secrets.token_urlsafe(32), ip=ip, language=language, reserved_until=until,
            )
            # a unique conflict writes nothing and raises nothing: no savepoint per checkout;
            # the buyer's unpaid orders are counted by the same statement (after the locks),
            # which also takes the lines' keys, so their INSERT can travel with the key claim
            counted, counted_params = _open_orders_query(contact_value, ip)
            taken = "".join(f", {new_key_sql(model)}" for model in within_transaction_keys)
            written, (by_contact, by_network, *taken_keys, line_keys) = insert_row_alongside(
                order, f"SELECT counted.*{taken}, {new_keys_sql(OrderLine)} FROM ({counted}) counted",
                [len(priced), *counted_params], ignore_conflicts=True)
            advance_keys = dict(zip(within_transaction_keys, taken_keys, strict=True))
            # refused: the rollback takes the new row back
            _check_open_order_limits(rules, (by_contact, by_network))
            if written:
                break
            if idempotency_key:  # the same request raced us and won
                existing = Order.objects.filter(idempotency_key=idempotency_key).first()
                if existing is not None:
                    return existing
            if attempt == 2:  # not a number collision after all
                raise IntegrityError(f"order {order.number} conflicts with an existing order")
        placed_lines = [new_row(OrderLine, id=key, order=order, sku=sku, product_type=sku.product.type,
                                title=str(sku), quantity=quantity, unit_price=unit, total=unit * quantity,
                                account=account)
                        for key, (sku, quantity, account, unit) in zip(line_keys, priced, strict=True)]
        insert_rows(placed_lines, keyed=True)  # held: it goes to the database with the first key claim
        created = _event(order, "", S.PENDING_PAYMENT, "order.created", actor=actor,
                         data={"total": subtotal, "lines": len(priced)})
        if within_transaction is not None:
            within_transaction(order, advance_keys)
        for line, (sku, quantity, _, _) in zip(placed_lines, priced, strict=True):
            if sku.product.type == Product.Type.CARD_KEY:
                reserved = _reserve(line, sku, quantity, until)
                if reserved < quantity and not (reserved == 0 and _has_loop_key(sku)):
                    left = reserved
                    raise OrderError(f"Only {left} left in stock." if left else "Sold out.", field="quantity",
                                     code="out_of_stock", status=409)
        if order.total == 0:  # free items need no payment: deliver at once
            order_mark_paid(order=order, payment=None, actor="system")
    # what the new order holds, so a caller can show it without reading it back
    order.placed_lines, order.placed_events = placed_lines, [created]
    return order


def _lock_open_orders(contact: str, ip: str | None) -> OrderSettings:
    """At most N unpaid orders per contact and per network, so nobody holds the stock
    hostage. Transaction-scoped advisory locks make the count and the insert atomic for
    one contact / network (two parallel checkouts cannot both slip under it): taken
    here, before the statement that counts (``_open_orders_query``). Returns the shop's
    order settings, read by the statement that takes the locks."""
    lock_names = [f"open-orders:contact:{contact}", *([f"open-orders:ip:{ip}"] if ip else [])]
    locks = ", ".join(["pg_advisory_xact_lock(hashtext(%s))"] * len(lock_names))
    # RIGHT JOIN: the locks are taken once, also in a shop that has no settings row yet
    (rules,) = select_joined((OrderSettings,), f"RIGHT JOIN (SELECT {locks}) locked ON TRUE", "TRUE", lock_names,
                             suffix="ORDER BY t0.id LIMIT 1")
    return rules or OrderSettings()


def _open_orders_query(contact: str, ip: str | None) -> tuple[str, list]:
    """Unpaid purchases of the contact and of the network (NULL without one), one row."""
    unpaid = [S.PENDING_PAYMENT, Order.Kind.PURCHASE]
    if not ip:
        return "SELECT count(*), NULL FROM orders_order WHERE contact = %s AND status = %s AND kind = %s", \
            [contact, *unpaid]
    return ("SELECT count(*) FILTER (WHERE contact = %s), count(*) FILTER (WHERE ip = %s) FROM orders_order "
            "WHERE (contact = %s OR ip = %s) AND status = %s AND kind = %s", [contact, ip, contact, ip, *unpaid])


def _check_open_order_limits(rules: OrderSettings, open_orders: tuple[int, int | None]) -> None:
    by_contact, by_network = open_orders
    if by_contact >= rules.max_open_orders_per_contact:
        raise OrderError("You have too many unpaid orders. Pay or cancel one first.", field="contact",
                         code="too_many_open_orders", status=429)
    if by_network is not None and by_network >= rules.max_open_orders_per_ip:  # no network, no network limit
        raise OrderError("Too many unpaid orders from your network. Pay or cancel one first.",
                         code="too_many_open_orders", status=429)


def wallet_topup_order(*, customer, amount: int, ip: str | None = None, language: str = "zh-hans") -> Order:
    if not isinstance(amount, int) or amount <= 0 or amount > 10_000_000:
        raise OrderError("Top-up amount must be between 0.01 and 100,000.", field="amount")
    with transaction.atomic():
        order = Order.objects.create(
            number=_new_number(), kind=Order.Kind.WALLET_TOPUP, customer=customer,
            contact=customer.email or customer.phone, contact_email=customer.email or "",
            currency=getattr(connection.tenant, "currency", "CNY"), subtotal=amount, total=amount,
            access_token=secrets.token_urlsafe(32), ip=ip, language=language,
            reserved_until=timezone.now() + timedelta(minutes=OrderSettings.current().reservation_minutes),
        )
        _event(order, "", S.PENDING_PAYMENT, "order.created", data={"wallet_topup": amount})
    return order


# --- state machine -------------------------------------------------------------------

def _event(order: Order, from_status: str, to_status: str, kind: str, *, message: str = "", data=None,
           actor: str = "") -> OrderEvent:
    event = new_row(OrderEvent, order=order, from_status=from_status, to_status=to_status, kind=kind,
                    message=message, data=data or {}, actor=actor)
    insert_row(event, returning=False)  # the history is read by order, never by the event's id
    return event


def order_transition(order: Order, to: str, kind: str, *, message: str = "", data=None, actor: str = "",
                     unwritten: tuple[str, ...] = (), write: bool = True) -> tuple[str, ...]:
    """Move ``order`` (locked by the caller) to ``to`` if the state machine allows it,
    with its event. ``write=False``: the row is not written yet; the fields to write are
    returned, for the next transition of the same transaction to write with its own
    (``unwritten``): one UPDATE of the order instead of two (each UPDATE of its status
    writes a new row version into every index of the table)."""
    if to not in ALLOWED.get(order.status, set()):
        raise OrderError(f"An order that is {order.get_status_display().lower()} cannot become {to}.",
                         code="bad_transition", status=409)
    previous = order.status
    order.status = to
    now = timezone.now()
    fields = [*unwritten, *(["status"] if "status" not in unwritten else [])]
    if to == S.PAID:
        order.paid_at, fields = now, fields + ["paid_at", "payment_method"]
    if to == S.DELIVERED:
        order.delivered_at, fields = now, fields + ["delivered_at"]
    if write:
        update_row(order, fields)
    _event(order, previous, to, kind, message=message, data=data, actor=actor)
    return () if write else tuple(fields)


def _release_reservations(order: Order) -> None:
    for line in order.lines.all():
        released = CardKey.objects.filter(order_line=line, status=CardKey.Status.RESERVED).update(
            status=CardKey.Status.AVAILABLE, order_line=None, reserved_until=None)
        if released:
            adjust_counts(line.sku_id, available=released, reserved=-released)


def order_cancel(*, order: Order, actor: str = "buyer") -> Order:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        order_transition(order, S.CANCELLED, "order.cancelled", actor=actor)
        _release_reservations(order)
    return order


def orders_expire_due(now=None) -> int:
    """Beat job: unpaid orders past their reservation expire and give their keys back."""
    now = now or timezone.now()
    count = 0
    for order_id in Order.objects.filter(status=S.PENDING_PAYMENT, reserved_until__lt=now).values_list("id",
                                                                                                     flat=True):
        with transaction.atomic():
            order = Order.objects.select_for_update(skip_locked=True).filter(pk=order_id,
                                                                             status=S.PENDING_PAYMENT).first()
            if order is None:
                continue
            order_transition(order, S.EXPIRED, "order.expired", message="Reservation ran out before payment.")
            _release_reservations(order)
            count += 1
    return count


# --- payment and delivery ------------------------------------------------------------

def _sell_line(line: OrderLine) -> tuple[int, bool]:
    """Turn the line's reserved keys into sold ones and top up from free stock; returns
    how many units the line now has delivered, and whether its SKU is now due a
    low-stock alert."""
    now = timezone.now()
    missing = line.quantity - line.delivered_quantity
    if missing <= 0:
        return line.delivered_quantity, False
    with statement_cursor() as cursor:
        # the reserved keys sold, and whether the SKU is due a low-stock alert (a sale moves
        # no available key: the count it reads is the one the alert is about)
        cursor.execute(*with_held_writes(
            f"""WITH sold AS (
                    UPDATE inventory_cardkey SET status = 'sold', sold_at = %s, reserved_until = NULL
                    WHERE order_line_id = %s AND status = 'reserved' RETURNING id)
                SELECT ARRAY(SELECT id FROM sold ORDER BY id),
                    coalesce((SELECT {LOW_STOCK_DUE_SQL} FROM catalog_sku s
                              WHERE s.id = %s AND EXISTS (SELECT 1 FROM sold)), false)""",
            [now, line.pk, line.sku_id], tables=("inventory_cardkey", "catalog_sku", "catalog_product")))
        sold_ids, low_stock = cursor.fetchone()
    # counted as sold with the transaction's last statement: the SKU's row is locked late
    adjust_counts_held(line.sku_id, reserved=-len(sold_ids), sold=len(sold_ids))
    from_reservation = sold_ids[:missing]
    fresh: list[int] = []
    if len(from_reservation) < missing:  # reservation expired: take what is free now
        fresh = _claim_free_keys(line.sku, missing - len(from_reservation),
                                 "status = 'sold', sold_at = %s, order_line_id = %s", [now, line.pk])
        low_stock = adjust_counts(line.sku_id, available=-len(fresh), sold=len(fresh)) or low_stock
    sold = from_reservation + fresh
    # after the count, which answers: held inside batched_writes, the keys go with the next write
    insert_rows([new_row(DeliveredKey, order_line=line, card_key_id=key_id) for key_id in sold], returning=False)
    delivered = line.delivered_quantity + len(sold)
    if delivered < line.quantity:
        loop_key = CardKey.objects.filter(sku_id=line.sku_id, status=CardKey.Status.AVAILABLE, is_loop=True).first()
        if loop_key is not None:
            DeliveredKey.objects.bulk_create([DeliveredKey(order_line=line, card_key=loop_key, is_loop=True)
                                              for _ in range(line.quantity - delivered)])
            delivered = line.quantity
    if delivered != line.delivered_quantity:
        line.delivered_quantity = delivered
        update_row(line, ["delivered_quantity"])
    return delivered, low_stock


def order_mark_paid(*, order: Order, payment=None, actor: str = "gateway") -> Order:
    """Called by the payments core inside its transaction, ``order`` locked:
    paid → delivered / awaiting_stock / processing, keys sold exactly once."""
    if order.status not in (S.PENDING_PAYMENT, S.EXPIRED, S.CANCELLED):
        return order  # already paid: replays change nothing
    if payment is not None:
        order.payment_method = payment.provider  # saved with the transition
    # read before the transition's writes, so they travel with the key sale (batched_writes),
    # unless the caller read them with the order's lock (rows in hand: remember_related)
    if order.kind == Order.Kind.WALLET_TOPUP:
        lines = None
    elif "lines" in getattr(order, "_prefetched_objects_cache", {}):
        lines = list(order.lines.all())
    else:
        lines = select_rows(OrderLine, "order_id = %s", [order.pk], suffix="ORDER BY id", independent_of_held=True)
    # the row is written once, by the transition that follows at once (delivered, …)
    paid = order_transition(order, S.PAID, "order.paid", actor=actor, write=False,
                            data={"payment": getattr(payment, "pk", None), "provider": getattr(payment, "provider", "")})
    if order.kind == Order.Kind.WALLET_TOPUP:
        from platform_core.customers.services import wallet_credit

        wallet_credit(customer=order.customer, amount=order.total, kind="topup", reference=order.number,
                      order=order)
        order_transition(order, S.COMPLETED, "wallet.credited", actor="system", data={"amount": order.total},
                         unwritten=paid)
        return order
    _deliver(order, lines, unwritten=paid)
    return order


def _deliver(order: Order, lines: list[OrderLine] | None = None, *, unwritten: tuple[str, ...] = ()) -> None:
    """Sell the lines' keys and move the order on (awaiting stock, processing, delivered);
    ``unwritten``: fields of the order a transition before this one left to write."""
    if lines is None:
        lines = select_rows(OrderLine, "order_id = %s", [order.pk], suffix="ORDER BY id")
    waiting_for_staff = False
    short = False
    low_stock_skus = set()
    for line in lines:
        if line.product_type == Product.Type.CARD_KEY:
            delivered, low_stock = _sell_line(line)
            short = short or delivered < line.quantity
            if low_stock:
                low_stock_skus.add(line.sku_id)
        else:
            waiting_for_staff = waiting_for_staff or line.delivered_quantity < line.quantity
    if short:
        if order.status != S.AWAITING_STOCK:
            unwritten = order_transition(order, S.AWAITING_STOCK, "order.awaiting_stock", unwritten=unwritten,
                                         message="Paid; some keys are out of stock and follow as soon as stock "
                                                 "arrives.")
    elif waiting_for_staff:
        if order.status != S.PROCESSING:
            unwritten = order_transition(order, S.PROCESSING, "order.processing", unwritten=unwritten,
                                         message="Paid; the shop delivers this order shortly.")
    else:
        unwritten = order_transition(order, S.DELIVERED, "order.delivered", actor="system", unwritten=unwritten)
    if unwritten:  # no transition took them along
        update_row(order, unwritten)
    _email_after_commit(order.pk, low_stock_skus)


def _email_after_commit(order_id: int, low_stock_sku_ids=()) -> None:
    """In the transaction that delivered: queue the e-mail with the keys in it (one
    more held row, no round trip of its own), wake the mailer once it commits."""
    insert_row(new_row(PendingOrderEmail, order_id=order_id), returning=False)
    low_stock = sorted(low_stock_sku_ids)
    # robust: the delivery stands if the broker is down; the beat's drain sends it then
    transaction.on_commit(lambda: _after_delivery(low_stock), robust=True)


def _after_delivery(low_stock_sku_ids: list[int]) -> None:
    from platform_core.orders import tasks

    tasks.wake_order_mailer()
    if low_stock_sku_ids:  # only SKUs that reached their threshold and are not alerted yet
        tasks.check_low_stock.delay(low_stock_sku_ids)


def order_email_send(order_id: int) -> bool:
    """The keys by e-mail (idempotent: it describes the order's current state). False
    when there is nobody to write to."""
    from django.core.mail import send_mail
    from django.template.loader import render_to_string
    from django.utils import translation

    from tenants.services import shop_url

    order = Order.objects.filter(pk=order_id).first()
    if order is None or not order.contact_email or order.kind != Order.Kind.PURCHASE:
        return False
    shop = connection.tenant
    language = order.language or getattr(shop, "language", "en")
    with translation.override(language):
        context = {"order": order, "shop": shop, "items": order_delivered_items(order),
                   "order_url": shop_url(shop, f"/order/{order.number}/?t={order.access_token}"),
                   "LANGUAGE_CODE": language}
        send_mail(subject=f"{shop.name}: order {order.number}",
                  message=render_to_string("orders/email/delivered.txt", context),
                  from_email=None, recipient_list=[order.contact_email])
    return True


def order_emails_send_pending(*, limit: int = 500) -> int:
    """Send the queued delivery e-mails, oldest first, one per order however often it
    was queued, each committed on its own (a crash re-sends at most one). Orders another
    drain holds are skipped. A mail server that cannot be reached (or answers "try
    later") keeps the rest queued and raises for the task to retry; an e-mail that can
    never go (address refused, an error of its own) is logged and dropped so it holds up
    nobody else's. Returns how many went."""
    sent = 0
    for _ in range(limit):
        with transaction.atomic():
            head = (PendingOrderEmail.objects.select_for_update(skip_locked=True).order_by("queued_at", "id")
                    .values_list("order_id", flat=True).first())
            if head is None:
                break
            # the rows for this order now: all answered by the e-mail rendered below
            rows = list(PendingOrderEmail.objects.select_for_update(skip_locked=True).filter(order_id=head)
                        .values_list("id", flat=True))
            try:
                sent += order_email_send(head)
            except Exception as exc:  # noqa: BLE001 - sorted below: retry later, or give this one up
                if _mail_server_unavailable(exc):
                    raise
                logger.warning("delivery e-mail for order %s dropped: %s: %s", head, type(exc).__name__, exc)
            PendingOrderEmail.objects.filter(pk__in=rows).delete()
    return sent


def _mail_server_unavailable(exc: Exception) -> bool:
    """Worth trying again later, for every e-mail alike: the server could not be
    reached, hung up, refused our login or sender, or said "try later" (4xx). Not: this
    address or this message refused (5xx), or an error of the order's own."""
    import smtplib

    if isinstance(exc, smtplib.SMTPRecipientsRefused):  # 4xx: greylisted, a full mailbox
        return all(code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPDataError):
        return exc.smtp_code < 500
    return isinstance(exc, OSError)  # smtplib's errors are OSErrors too


def orders_fulfil_awaiting_stock(*, sku_id: int) -> int:
    """Stock arrived: deliver paid orders waiting for it, oldest first."""
    delivered = 0
    waiting = (Order.objects.filter(status=S.AWAITING_STOCK, lines__sku_id=sku_id).order_by("paid_at", "id")
               .values_list("id", flat=True).distinct())
    for order_id in list(waiting):
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=order_id)
            if order.status != S.AWAITING_STOCK:
                continue
            _deliver(order)
            delivered += order.status == S.DELIVERED
    return delivered


def line_mark_delivered(*, line: OrderLine, note: str, actor) -> Order:
    """Staff deliver a manual or top-up line (the note is what the buyer sees)."""
    from platform_core import crypto

    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=line.order_id)
        line = OrderLine.objects.get(pk=line.pk)
        if order.status not in (S.PROCESSING, S.PAID):
            raise OrderError("Only paid orders being processed can be delivered by hand.", status=409)
        line.delivery_note = crypto.encrypt(connection.tenant, note or "", context="orders:delivery-note")
        line.delivered_quantity = line.quantity
        line.save(update_fields=["delivery_note", "delivered_quantity"])
        if all(other.delivered_quantity >= other.quantity for other in order.lines.all()):
            order_transition(order, S.DELIVERED, "order.delivered", actor=getattr(actor, "email", str(actor)))
            _email_after_commit(order.pk)
    return order


# --- what the buyer sees -------------------------------------------------------------

@dataclass
class DeliveredItem:
    line_title: str
    secret: str
    delivered_key_id: int | None = None
    replaced: bool = False


def order_delivered_items(order: Order) -> list[DeliveredItem]:
    """Plaintext keys and delivery notes of an order — only for its owner."""
    from platform_core import crypto

    cipher = KeyCipher(connection.tenant)
    items = []
    for line in order.lines.all():
        for delivered in line.delivered_keys.select_related("card_key").order_by("id"):
            items.append(DeliveredItem(line.title, cipher.decrypt(delivered.card_key.secret), delivered.pk,
                                       replaced=delivered.replaced_by_id is not None))
        if line.delivery_note:
            items.append(DeliveredItem(line.title, crypto.decrypt_str(connection.tenant, line.delivery_note,
                                                                      context="orders:delivery-note")))
    return items


def order_lookup(*, number: str, contact: str, query_password: str) -> Order | None:
    """Order lookup (查单) without an account: all three must match."""
    order = Order.objects.filter(number=(number or "").strip()).first()
    try:
        contact_value, _ = _validate_contact(contact)
    except OrderError:
        return None
    if order is None or order.contact != contact_value or not order.query_password:
        spend_equal_time(query_password)  # same cost whether or not the order exists
        return None
    return order if check_query_password(query_password, order.query_password) else None


# --- refunds and after-sales ---------------------------------------------------------

def order_refund(*, order: Order, amount: int, reason: str, actor, ticket: Ticket | None = None) -> Order:
    """Refund ``amount`` (minor units) through the payment it was paid with."""
    from platform_core.payments.services import payment_refund

    if not isinstance(amount, int) or amount <= 0:
        raise OrderError("Refund amount must be a positive amount.", field="amount")
    actor_name = getattr(actor, "email", str(actor or "system"))
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if amount > order.total - order.refunded_amount:
            raise OrderError("Refund exceeds what is left to refund on this order.", field="amount")
        payment = order.payments.filter(status="succeeded").first()
        if payment is None:
            raise OrderError("This order has no completed payment to refund.", code="not_paid", status=409)
        full = order.refunded_amount + amount == order.total
        # a payment fee the buyer paid goes back with the refund that completes the order,
        # never with a partial one (docs/decisions/0027)
        returned = min(amount + payment.buyer_fee, payment.amount - payment.refunded_amount) if full else amount
        payment_refund(payment=payment, amount=returned, reason=reason, actor=actor_name)
        order.refunded_amount += amount
        order.save(update_fields=["refunded_amount"])
        if full:
            order_transition(order, S.REFUNDED, "order.refunded", message=reason, actor=actor_name,
                             data={"amount": amount, "fee_returned": returned - amount})
            _release_reservations(order)
        else:
            _event(order, order.status, order.status, "order.partially_refunded", message=reason,
                   actor=actor_name, data={"amount": amount})
        if ticket is not None:
            TicketMessage.objects.create(ticket=ticket, from_staff=True, author=actor_name,
                                         body=f"Refunded {format_minor(returned, order.currency)}. {reason}".strip())
        audit_record(action="order.refunded", actor=actor if hasattr(actor, "pk") else None, target=order,
                     data={"amount": amount, "fee_returned": returned - amount, "full": full, "reason": reason})
    return order


def ticket_open(*, order: Order, reason: str, message: str) -> Ticket:
    if reason not in Ticket.Reason.values:
        raise OrderError("Choose what went wrong.", field="reason")
    message = (message or "").strip()
    if not message or len(message) > 4000:
        raise OrderError("Describe the problem (up to 4,000 characters).", field="message")
    if order.status in (S.PENDING_PAYMENT, S.EXPIRED, S.CANCELLED):
        raise OrderError("After-sales help is for paid orders.", code="not_paid", status=409)
    if order.tickets.filter(status__in=[Ticket.Status.OPEN, Ticket.Status.ANSWERED]).count() >= 3:
        raise OrderError("This order already has open tickets; reply there.", code="too_many_tickets", status=429)
    with transaction.atomic():
        ticket = Ticket.objects.create(order=order, reason=reason)
        TicketMessage.objects.create(ticket=ticket, body=message, author=order.contact)
        _event(order, order.status, order.status, "ticket.opened", data={"ticket": ticket.pk, "reason": reason},
               actor="buyer")
    return ticket


def ticket_reply(*, ticket: Ticket, body: str, actor=None, from_staff: bool) -> TicketMessage:
    body = (body or "").strip()
    if not body or len(body) > 4000:
        raise OrderError("Write a message (up to 4,000 characters).", field="body")
    if ticket.status == Ticket.Status.CLOSED:
        raise OrderError("This ticket is closed.", code="closed", status=409)
    with transaction.atomic():
        message = TicketMessage.objects.create(ticket=ticket, body=body, from_staff=from_staff,
                                               author=getattr(actor, "email", "") or ticket.order.contact)
        ticket.status = Ticket.Status.ANSWERED if from_staff else Ticket.Status.OPEN
        ticket.save(update_fields=["status"])
    return message


def ticket_reissue_key(*, ticket: Ticket, delivered_key_id: int, actor) -> DeliveredKey:
    """Staff replace a bad key: the old one is voided, a fresh one delivered."""
    actor_name = getattr(actor, "email", str(actor))
    if ticket.status == Ticket.Status.CLOSED:
        raise OrderError("This ticket is closed.", code="closed", status=409)
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=ticket.order_id)
        old = (DeliveredKey.objects.select_for_update().select_related("card_key", "order_line")
               .filter(pk=delivered_key_id, order_line__order=order, replaced_by__isnull=True).first())
        if old is None:
            raise OrderError("That key is not part of this order.", field="key", status=404)
        line = old.order_line
        claimed = _claim_free_keys(line.sku, 1, "status = 'sold', sold_at = now(), order_line_id = %s", [line.pk])
        if not claimed:
            raise OrderError("No replacement key in stock; import keys or refund instead.", code="out_of_stock",
                             status=409)
        replacement = DeliveredKey.objects.create(order_line=line, card_key_id=claimed[0])
        old.replaced_by = replacement
        old.save(update_fields=["replaced_by"])
        if old.is_loop:
            adjust_counts(line.sku_id, available=-1, sold=1)
        else:  # the new key is sold (+1 sold), the bad one leaves "sold" for "void" (-1 sold)
            CardKey.objects.filter(pk=old.card_key_id).update(status=CardKey.Status.VOID)
            adjust_counts(line.sku_id, available=-1)
        TicketMessage.objects.create(ticket=ticket, from_staff=True, author=actor_name,
                                     body="We replaced the key that did not work; the new one is on your order page.")
        ticket.status = Ticket.Status.ANSWERED
        ticket.save(update_fields=["status"])
        _event(order, order.status, order.status, "key.reissued", actor=actor_name,
               data={"old": old.card_key_id, "new": claimed[0], "ticket": ticket.pk})
        audit_record(action="order.key_reissued", actor=actor if hasattr(actor, "pk") else None, target=order,
                     data={"ticket": ticket.pk})
        _email_after_commit(order.pk, {line.sku_id})
    return replacement


def ticket_close(*, ticket: Ticket, actor=None) -> Ticket:
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        if ticket.status == Ticket.Status.CLOSED:
            return ticket
        ticket.status, ticket.closed_at = Ticket.Status.CLOSED, timezone.now()
        ticket.save(update_fields=["status", "closed_at"])
        actor_name = getattr(actor, "email", str(actor or ""))
        _event(ticket.order, ticket.order.status, ticket.order.status, "ticket.closed", actor=actor_name,
               data={"ticket": ticket.pk})
    return ticket


def order_refund_recorded_outside(*, order: Order, payment, amount: int, external_id: str) -> None:
    """The gateway reports a refund nobody made in Kameng: record it as it is."""
    from platform_core.payments.models import Refund

    amount = min(amount, payment.amount - payment.refunded_amount)
    if amount <= 0:
        return
    Refund.objects.create(payment=payment, amount=amount, status=Refund.Status.SUCCEEDED, external_id=external_id,
                          reason="Refunded at the payment gateway", created_by="gateway")
    payment.refunded_amount += amount
    payment.save(update_fields=["refunded_amount"])
    order.refunded_amount = min(order.total, order.refunded_amount + amount)
    order.save(update_fields=["refunded_amount"])
    if order.refunded_amount == order.total and S.REFUNDED in ALLOWED.get(order.status, set()):
        order_transition(order, S.REFUNDED, "order.refunded", message="Refunded at the payment gateway",
                         actor="gateway", data={"amount": amount})
    else:
        _event(order, order.status, order.status, "order.partially_refunded", actor="gateway",
               data={"amount": amount, "external": external_id})


def orders_refund_stale_awaiting_stock(now=None) -> int:
    """Beat job: paid orders that waited for stock longer than the shop allows are refunded."""
    now = now or timezone.now()
    hours = OrderSettings.current().awaiting_stock_refund_hours
    count = 0
    for order in Order.objects.filter(status=S.AWAITING_STOCK, paid_at__lt=now - timedelta(hours=hours)):
        undelivered = sum((line.quantity - line.delivered_quantity) * line.unit_price for line in order.lines.all())
        amount = min(undelivered, order.total - order.refunded_amount)
        try:
            if amount > 0:
                order_refund(order=order, amount=amount, reason="Out of stock for too long: refunded automatically.",
                             actor="system")
            count += 1
        except Exception:  # noqa: BLE001 - one failing gateway must not stop the sweep
            logger.exception("automatic refund of order %s failed", order.number)
    return count
