"""Delivery e-mails go through a queue written with the delivery (decision 0044): every
delivered order gets its e-mail once, a burst wakes the mailer once, and neither a
broker that is down nor a mail server that fails loses one."""
from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import tenant_context
from kombu.exceptions import OperationalError as BrokerDown

from platform_core.orders import services, tasks
from platform_core.orders.models import Order, PendingOrderEmail
from platform_core.orders.services import LineRequest
from tests.commerce_helpers import make_product, pay
from tests.orders.test_concurrency import committed_alpha, run_in_threads  # noqa: F401 - fixture


def place(sku, contact):
    return services.order_place(lines=[LineRequest(sku.pk, 1)], contact=contact, query_password="1234")


@pytest.fixture
def shop(alpha):
    with tenant_context(alpha):
        yield alpha


@pytest.fixture
def wake_ups(monkeypatch):
    """The drains the deliveries asked for, not run (as with a busy worker)."""
    asked = []
    monkeypatch.setattr(tasks.send_pending_order_emails, "delay", lambda: asked.append(connection.schema_name))
    return asked


def test_a_burst_of_deliveries_wakes_the_mailer_once_and_each_buyer_gets_one_email(
        shop, mailoutbox, wake_ups, django_capture_on_commit_callbacks):
    sku = make_product(keys=3)
    orders = [place(sku, f"b{n}@example.com") for n in range(3)]
    for order in orders:
        with django_capture_on_commit_callbacks(execute=True):
            pay(order)
    assert wake_ups == [shop.schema_name] and PendingOrderEmail.objects.count() == 3 and not mailoutbox
    assert tasks.send_pending_order_emails() == 3
    assert sorted(m.to[0] for m in mailoutbox) == ["b0@example.com", "b1@example.com", "b2@example.com"]
    assert all(f"KEY-{sku.pk}-" in m.body for m in mailoutbox)
    assert not PendingOrderEmail.objects.exists()
    # the drain forgot the wake-up: the next delivery asks for another
    with django_capture_on_commit_callbacks(execute=True):
        pay(place(make_product(keys=1), "late@example.com"))
    assert wake_ups == [shop.schema_name] * 2


def test_the_delivery_stands_when_the_broker_is_down_and_the_email_follows(
        shop, mailoutbox, monkeypatch, django_capture_on_commit_callbacks):
    def broker_down():
        raise BrokerDown("Error 111 connecting to localhost:6379. Connection refused.")

    monkeypatch.setattr(tasks.send_pending_order_emails, "delay", broker_down)
    order = place(make_product(keys=1), "buyer@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        assert pay(order) == "paid"
    order.refresh_from_db()
    assert order.status == "delivered" and not mailoutbox
    assert list(PendingOrderEmail.objects.values_list("order_id", flat=True)) == [order.pk]
    assert services.order_emails_send_pending() == 1  # what the beat's drain does a minute later
    assert [m.to for m in mailoutbox] == [["buyer@example.com"]]


def test_a_failing_mail_server_keeps_the_unsent_emails_queued(shop, mailoutbox, wake_ups, monkeypatch,
                                                            django_capture_on_commit_callbacks):
    import django.core.mail

    sku = make_product(keys=2)
    first, second = place(sku, "first@example.com"), place(sku, "second@example.com")
    for order in (first, second):
        with django_capture_on_commit_callbacks(execute=True):
            pay(order)
    real_send_mail = django.core.mail.send_mail

    def send_one_then_fail(*args, **kwargs):
        if mailoutbox:
            raise ConnectionRefusedError(111, "Connection refused")
        return real_send_mail(*args, **kwargs)

    monkeypatch.setattr(django.core.mail, "send_mail", send_one_then_fail)
    with pytest.raises(ConnectionRefusedError):  # the task retries on OSError
        services.order_emails_send_pending()
    assert [m.to for m in mailoutbox] == [["first@example.com"]]
    assert list(PendingOrderEmail.objects.values_list("order_id", flat=True)) == [second.pk]
    monkeypatch.setattr(django.core.mail, "send_mail", real_send_mail)
    assert services.order_emails_send_pending() == 1
    assert [m.to for m in mailoutbox] == [["first@example.com"], ["second@example.com"]]


def test_an_order_queued_twice_gets_one_email_with_its_current_keys(shop, mailoutbox, wake_ups,
                                                                    django_capture_on_commit_callbacks):
    order = place(make_product(keys=1), "buyer@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)
    PendingOrderEmail.objects.create(order=order)  # e.g. a key reissued before the drain ran
    assert services.order_emails_send_pending() == 1 and len(mailoutbox) == 1
    assert not PendingOrderEmail.objects.exists()


def test_orders_without_an_email_address_are_dropped_from_the_queue(shop, mailoutbox, wake_ups,
                                                                   django_capture_on_commit_callbacks):
    order = place(make_product(keys=1), "+8613800138000")  # a phone number as the contact
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)
    assert PendingOrderEmail.objects.count() == 1
    assert services.order_emails_send_pending() == 0
    assert not mailoutbox and not PendingOrderEmail.objects.exists()


def test_parallel_drains_send_each_email_once(committed_alpha, mailoutbox, wake_ups):  # noqa: F811
    sku = make_product(keys=40)
    for n in range(40):
        pay(place(sku, f"p{n}@example.com"))
    assert PendingOrderEmail.objects.count() == 40 and Order.objects.filter(status="delivered").count() == 40
    sent = run_in_threads(4, lambda n: services.order_emails_send_pending(batch=5))
    assert all(isinstance(count, int) for count in sent), sent
    assert sum(sent) == 40
    assert sorted(m.to[0] for m in mailoutbox) == sorted(f"p{n}@example.com" for n in range(40))
    assert not PendingOrderEmail.objects.exists()
