"""Order, ticket and customer reads for the shop console and the shop API.

Delivered keys are only ever returned masked here; the plaintext comes from
``orders.services.order_delivered_items`` and callers must audit that read.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Case, Count, IntegerField, Prefetch, Q, QuerySet, Value, When

from platform_core.customers.models import Customer, WalletEntry
from platform_core.inventory.models import DeliveredKey
from platform_core.inventory.stock import KeyCipher, mask
from platform_core.orders.models import Order, OrderEvent, OrderLine, Ticket, TicketMessage

STAFF_DELIVERED_TYPES = ("manual", "topup")


# --- orders --------------------------------------------------------------------------

def order_list(*, status: str | None = None, contact: str | None = None, number: str | None = None) -> QuerySet[Order]:
    orders = Order.objects.all()
    if status:
        orders = orders.filter(status=status)
    if contact:
        orders = orders.filter(contact__iexact=contact.strip())
    if number:
        orders = orders.filter(number=number.strip())
    return orders.order_by("-id")


def order_get(*, number: str) -> Order | None:
    return Order.objects.filter(number=(number or "").strip()).first()


def order_by_idempotency_key(key: str) -> Order | None:
    return Order.objects.filter(idempotency_key=key).first() if key else None


def order_with_history(*, number: str) -> Order | None:
    """An order with its lines, events, payments and refunds loaded."""
    from platform_core.payments.models import Payment

    return (Order.objects.filter(number=(number or "").strip())
            .prefetch_related("lines", Prefetch("events", queryset=OrderEvent.objects.order_by("id")),
                              Prefetch("payments", queryset=Payment.objects.order_by("id").prefetch_related("refunds")))
            .first())


def order_lines_awaiting_staff(order: Order) -> list[OrderLine]:
    """Manual and top-up lines that staff still have to deliver."""
    return [line for line in order.lines.order_by("id")
            if line.product_type in STAFF_DELIVERED_TYPES and line.delivered_quantity < line.quantity]


def order_refundable_amount(order: Order) -> int:
    return max(order.total - order.refunded_amount, 0)


@dataclass(frozen=True)
class MaskedKey:
    delivered_key_id: int
    line_title: str
    masked: str
    replaced: bool
    is_loop: bool
    delivered_at: object


def order_keys_masked(order: Order) -> list[MaskedKey]:
    """The order's delivered keys as the console shows them: first and last characters."""
    cipher = KeyCipher(connection.tenant)
    delivered = (DeliveredKey.objects.filter(order_line__order=order).select_related("card_key", "order_line")
                 .order_by("id"))
    return [MaskedKey(item.pk, item.order_line.title, mask(cipher.decrypt(item.card_key.secret)),
                      item.replaced_by_id is not None, item.is_loop, item.delivered_at)
            for item in delivered]


# --- tickets -------------------------------------------------------------------------

_TICKET_STATUS_RANK = Case(When(status=Ticket.Status.OPEN, then=Value(0)),
                           When(status=Ticket.Status.ANSWERED, then=Value(1)),
                           default=Value(2), output_field=IntegerField())


def ticket_list(*, status: str | None = None, order_number: str | None = None) -> QuerySet[Ticket]:
    """Open tickets first (waiting for staff), then answered, then closed; newest first."""
    tickets = Ticket.objects.select_related("order").annotate(status_rank=_TICKET_STATUS_RANK,
                                                              message_count=Count("messages"))
    if status:
        tickets = tickets.filter(status=status)
    if order_number:
        tickets = tickets.filter(order__number=order_number.strip())
    return tickets.order_by("status_rank", "-id")


def ticket_get(*, ticket_id: int) -> Ticket | None:
    return (Ticket.objects.select_related("order")
            .prefetch_related(Prefetch("messages", queryset=TicketMessage.objects.order_by("id")))
            .filter(pk=ticket_id).first())


# --- customers (the buyers behind orders; customers has no selectors module yet) ------

def customer_list(*, search: str = "") -> QuerySet[Customer]:
    customers = Customer.objects.annotate(order_count=Count("orders"))
    search = (search or "").strip()
    if search:
        customers = customers.filter(Q(email__icontains=search) | Q(phone__icontains=search)
                                     | Q(name__icontains=search))
    return customers.order_by("-id")


def customer_get(*, customer_id: int) -> Customer | None:
    return Customer.objects.annotate(order_count=Count("orders")).filter(pk=customer_id).first()


def customer_ledger(customer: Customer, *, limit: int = 100) -> list[WalletEntry]:
    """The newest wallet movements first."""
    return list(WalletEntry.objects.filter(customer=customer).select_related("order").order_by("-id")[:limit])
