"""Small builders for commerce tests (run inside a shop schema)."""
from __future__ import annotations

from django.db import connection

from platform_core.catalog.models import SKU, Product
from platform_core.inventory.models import CardKey
from platform_core.inventory.stock import KeyCipher, recount
from platform_core.payments.models import Payment
from plugins.payment import GatewayEvent


def make_product(*, name="Game card 100", price=1000, keys=0, loop_key=None, type=Product.Type.CARD_KEY,
                 max_quantity=100, **product_fields) -> SKU:
    product = Product.objects.create(name=name, type=type, max_quantity=max_quantity, **product_fields)
    sku = SKU.objects.create(product=product, price=price)
    add_keys(sku, [f"KEY-{sku.pk}-{n:05d}" for n in range(keys)])
    if loop_key:
        add_keys(sku, [loop_key], loop=True)
    return sku


def add_keys(sku: SKU, secrets: list[str], *, loop: bool = False) -> None:
    cipher = KeyCipher(connection.tenant)
    CardKey.objects.bulk_create([
        CardKey(sku=sku, product_id_copy=sku.product_id, secret=cipher.encrypt(secret),
                fingerprint=cipher.fingerprint(secret), is_loop=loop)
        for secret in secrets
    ])
    recount(sku.pk)
    sku.refresh_from_db()


def pay(order, *, provider="test-pay", event_id=None, amount=None, currency=None) -> str:
    """Record a verified 'payment succeeded' event for ``order`` as a gateway would."""
    from platform_core.payments.services import record_event

    payment = Payment.objects.create(order=order, provider=provider, amount=order.total, currency=order.currency)
    return record_event(provider=provider, event=GatewayEvent(
        event_id=event_id or f"evt-{payment.pk}", kind="payment.succeeded", payment_reference=str(payment.pk),
        amount=order.total if amount is None else amount, currency=currency or order.currency))




class StatementCounter:
    """Counts the statements that reach PostgreSQL through Django's cursors (held writes
    included; BEGIN and COMMIT are not statements of a cursor)."""

    def __init__(self, monkeypatch):
        self.sent: list[str] = []
        with connection.cursor() as cursor:
            cursor_class = type(cursor.cursor)
        original = cursor_class.execute

        def execute(cursor, query, *args, **kwargs):
            self.sent.append(str(query))
            return original(cursor, query, *args, **kwargs)

        monkeypatch.setattr(cursor_class, "execute", execute)

    def clear(self) -> None:
        self.sent.clear()

    @property
    def work(self) -> list[str]:
        """The statements other than savepoints (a test's transaction is one)."""
        return [sql for sql in self.sent if not sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
