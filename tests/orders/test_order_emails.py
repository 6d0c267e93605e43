"""Delivery e-mails go through a queue written with the delivery (decision 0044): every
delivered order gets its e-mail once, a burst wakes the mailer once, and neither a
broker that is down nor a mail server that fails loses one."""
from __future__ import annotations

import smtplib
import time

import pytest
from django.core.cache import cache
from django.db import connection
from kombu.exceptions import OperationalError as BrokerDown

from platform_core.orders import services, tasks
from platform_core.orders.models import Order, PendingOrderEmail
from platform_core.orders.services import LineRequest
from tests.commerce_helpers import make_product, pay
from tests.orders.test_orders import place
from tests.orders.test_concurrency import committed_alpha, run_in_threads  # noqa: F401 - fixture
from tests.platform.test_worker import queued, worker  # noqa: F401 - fixtures


@pytest.fixture
def wake_ups(monkeypatch):
    """The drains the deliveries asked for, not run (as with a busy worker)."""
    asked = []
    monkeypatch.setattr(tasks.send_pending_order_emails, "delay",
                        lambda **kwargs: asked.append(connection.schema_name))
    return asked


def test_a_burst_of_deliveries_wakes_the_mailer_once_and_each_buyer_gets_one_email(
        shop, mailoutbox, wake_ups, django_capture_on_commit_callbacks, settings):
    settings.KAMENG_MAILER_WAKE_SECONDS = 0  # the flag alone: every delivery asks Redis
    sku = make_product(keys=3)
    orders = [place(sku, contact=f"b{n}@example.com") for n in range(3)]
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
        pay(place(make_product(keys=1), contact="late@example.com"))
    assert wake_ups == [shop.schema_name] * 2


def test_a_process_that_woke_the_mailer_skips_waking_it_again_and_the_follow_up_drain_sends_what_it_skipped(
        shop, mailoutbox, monkeypatch, settings, django_capture_on_commit_callbacks):
    """Decision 0050: within its seconds a process does not even ask Redis; the drain
    it woke asks for a follow-up drain as long after, which sends what came meanwhile."""
    settings.KAMENG_MAILER_WAKE_SECONDS = 60
    woken, follow_ups = [], []
    monkeypatch.setattr(tasks.send_pending_order_emails, "delay", lambda **kwargs: woken.append(kwargs))
    monkeypatch.setattr(tasks.send_pending_order_emails, "apply_async", lambda **kwargs: follow_ups.append(kwargs))
    sku = make_product(keys=3)
    first, second, third = (place(sku, contact=f"b{n}@example.com") for n in range(3))
    with django_capture_on_commit_callbacks(execute=True):
        pay(first)
    assert woken == [{"follow_up_after": 60}] and cache.get(tasks.MAILER_WOKEN_KEY) == 1
    assert tasks.send_pending_order_emails(**woken[0]) == 1  # the woken drain, as the worker runs it
    assert follow_ups == [{"countdown": 60}] and cache.get(tasks.MAILER_WOKEN_KEY) is None
    with django_capture_on_commit_callbacks(execute=True):
        pay(second)  # after the drain read the queue, within the process's seconds
    assert len(woken) == 1 and cache.get(tasks.MAILER_WOKEN_KEY) is None  # no SET NX, no message
    assert list(PendingOrderEmail.objects.values_list("order_id", flat=True)) == [second.pk]
    assert tasks.send_pending_order_emails() == 1  # the follow-up, 60 s later
    assert [m.to for m in mailoutbox] == [["b0@example.com"], ["b1@example.com"]]
    assert len(follow_ups) == 1  # a follow-up asks for no other
    # once the seconds have passed, the next delivery wakes the mailer again
    later = time.monotonic() + 61
    monkeypatch.setattr(tasks.time, "monotonic", lambda: later)
    with django_capture_on_commit_callbacks(execute=True):
        pay(third)
    assert len(woken) == 2 and cache.get(tasks.MAILER_WOKEN_KEY) == 1


def test_a_real_worker_sends_by_its_follow_up_drain_what_a_process_did_not_wake_it_for(
        committed_alpha, worker, queued, settings, monkeypatch):
    """With a Celery worker: the second delivery comes after the woken drain emptied the
    queue and does not wake it; the follow-up drain, in the same shop, sends it."""
    settings.KAMENG_MAILER_WAKE_SECONDS = 5
    woken = []
    real_delay = tasks.send_pending_order_emails.delay
    monkeypatch.setattr(tasks.send_pending_order_emails, "delay",
                        lambda **kwargs: woken.append(kwargs) or real_delay(**kwargs))
    sku = make_product(keys=2)
    first, second = place(sku, contact="first@example.com"), place(sku, contact="second@example.com")

    def queued_for(order) -> bool:
        return PendingOrderEmail.objects.filter(order_id=order.pk).exists()

    def drained(order, seconds) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not queued_for(order):
                return True
            time.sleep(0.05)
        return False

    pay(first)  # not in a test transaction: committed, so the hook runs and the worker sees it
    assert len(woken) == 1 and drained(first, 4.5)
    pay(second)
    assert len(woken) == 1 and queued_for(second)  # not woken for: the follow-up's to send
    assert drained(second, 20)


def test_the_delivery_stands_when_the_broker_is_down_and_the_email_follows(
        shop, mailoutbox, monkeypatch, django_capture_on_commit_callbacks):
    def broker_down(**kwargs):
        raise BrokerDown("Error 111 connecting to localhost:6379. Connection refused.")

    monkeypatch.setattr(tasks.send_pending_order_emails, "delay", broker_down)
    order = place(make_product(keys=1), contact="buyer@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        assert pay(order) == "paid"
    order.refresh_from_db()
    assert order.status == "delivered" and not mailoutbox
    assert list(PendingOrderEmail.objects.values_list("order_id", flat=True)) == [order.pk]
    assert services.order_emails_send_pending() == 1  # what the beat's drain does a minute later
    assert [m.to for m in mailoutbox] == [["buyer@example.com"]]


def _deliver_to(*contacts, django_capture_on_commit_callbacks):
    sku = make_product(keys=len(contacts))
    orders = [place(sku, contact=contact) for contact in contacts]
    for order in orders:
        with django_capture_on_commit_callbacks(execute=True):
            pay(order)
    return orders


def _mail_fails_for(monkeypatch, failure_for):
    """send_mail raises ``failure_for(recipient)`` when that is not None."""
    import django.core.mail

    real_send_mail = django.core.mail.send_mail

    def send_mail(*args, recipient_list, **kwargs):
        failure = failure_for(recipient_list[0])
        if failure is not None:
            raise failure
        return real_send_mail(*args, recipient_list=recipient_list, **kwargs)

    monkeypatch.setattr(django.core.mail, "send_mail", send_mail)


def test_a_mail_server_that_is_down_keeps_the_unsent_emails_queued(shop, mailoutbox, wake_ups, monkeypatch,
                                                                   django_capture_on_commit_callbacks):
    first, second = _deliver_to("first@example.com", "second@example.com",
                                django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    down = [True]
    _mail_fails_for(monkeypatch, lambda to: ConnectionRefusedError(111, "Connection refused")
                    if mailoutbox and down[0] else None)
    with pytest.raises(ConnectionRefusedError):  # the task retries on OSError
        services.order_emails_send_pending()
    assert [m.to for m in mailoutbox] == [["first@example.com"]]
    assert list(PendingOrderEmail.objects.values_list("order_id", flat=True)) == [second.pk]
    down[0] = False
    assert services.order_emails_send_pending() == 1
    assert [m.to for m in mailoutbox] == [["first@example.com"], ["second@example.com"]]


@pytest.mark.parametrize("failure", [
    smtplib.SMTPRecipientsRefused({"bad@example.com": (550, b"5.1.1 No such user")}),
    smtplib.SMTPDataError(554, b"5.7.1 Message rejected"),
    ValueError("the order's keys could not be decrypted"),  # an error of this order's own
], ids=["address refused", "message refused", "order's own error"])
def test_an_email_that_can_never_go_is_dropped_and_holds_up_nobody(shop, mailoutbox, wake_ups, monkeypatch,
                                                                   django_capture_on_commit_callbacks, failure, caplog):
    bad, good = _deliver_to("bad@example.com", "good@example.com",
                            django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    _mail_fails_for(monkeypatch, lambda to: failure if to == "bad@example.com" else None)
    assert services.order_emails_send_pending() == 1
    assert [m.to for m in mailoutbox] == [["good@example.com"]]
    assert not PendingOrderEmail.objects.exists()
    assert f"delivery e-mail for order {bad.pk} dropped" in caplog.text


@pytest.mark.parametrize("failure", [
    smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication failed"),
    smtplib.SMTPSenderRefused(550, b"5.7.1 Sender not allowed", "shop@example.com"),
    smtplib.SMTPDataError(451, b"4.3.0 Try again later"),
    smtplib.SMTPRecipientsRefused({"buyer@example.com": (450, b"4.2.0 Greylisted, try again later")}),
    smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
    TimeoutError("timed out"),
], ids=["login refused", "sender refused", "try later", "greylisted", "hung up", "timeout"])
def test_a_mail_server_problem_of_every_email_is_retried_not_dropped(shop, mailoutbox, wake_ups, monkeypatch,
                                                                     django_capture_on_commit_callbacks, failure):
    _deliver_to("buyer@example.com", django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    _mail_fails_for(monkeypatch, lambda to: failure)
    with pytest.raises(type(failure)):
        services.order_emails_send_pending()
    assert PendingOrderEmail.objects.count() == 1 and not mailoutbox


def test_the_beats_drain_also_reaches_suspended_and_closed_shops(alpha, bravo, monkeypatch):
    """They still hear their gateways and deliver; other per-shop jobs skip them."""
    from types import SimpleNamespace

    from platform_core.beat import ShopAwareScheduler

    bravo.status = "suspended"
    bravo.save(update_fields=["status"])
    scheduler = ShopAwareScheduler.__new__(ShopAwareScheduler)  # no schedule file: only apply_entry is used
    sent = []
    monkeypatch.setattr(scheduler, "apply_async", lambda entry, producer=None, advance=True: sent.append(
        (entry.task, connection.schema_name)) or SimpleNamespace(id="x"))
    for task in ("orders.send_pending_emails", "orders.expire_due"):
        scheduler.apply_entry(SimpleNamespace(name=task, task=task, options={"headers": {"_all_tenants_only": True}}))
    drained = {schema for task, schema in sent if task == "orders.send_pending_emails"}
    expired = {schema for task, schema in sent if task == "orders.expire_due"}
    assert {alpha.schema_name, bravo.schema_name} <= drained
    assert alpha.schema_name in expired and bravo.schema_name not in expired


def test_an_order_queued_twice_gets_one_email_with_its_current_keys(shop, mailoutbox, wake_ups,
                                                                    django_capture_on_commit_callbacks):
    order = place(make_product(keys=1), contact="buyer@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)
    PendingOrderEmail.objects.create(order=order)  # e.g. a key reissued before the drain ran
    assert services.order_emails_send_pending() == 1 and len(mailoutbox) == 1
    assert not PendingOrderEmail.objects.exists()


def test_a_reissued_key_and_a_hand_delivery_each_queue_the_buyers_email(shop, mailoutbox, wake_ups,
                                                                        django_capture_on_commit_callbacks):
    from platform_core.catalog.models import SKU, Product
    from platform_core.inventory.models import DeliveredKey

    sku = make_product(keys=2)
    order = place(sku, contact="buyer@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)
    services.order_emails_send_pending()
    order.refresh_from_db()
    [bad_secret] = [item.secret for item in services.order_delivered_items(order)]
    ticket = services.ticket_open(order=order, reason="invalid_key", message="The key does not work.")
    bad_key = DeliveredKey.objects.get(order_line__order=order)
    with django_capture_on_commit_callbacks(execute=True):
        replacement = services.ticket_reissue_key(ticket=ticket, delivered_key_id=bad_key.pk, actor="staff@example.com")
    assert list(PendingOrderEmail.objects.values_list("order_id", flat=True)) == [order.pk]
    with pytest.raises(services.OrderError):  # no key left to reissue: nothing queued
        services.ticket_reissue_key(ticket=ticket, delivered_key_id=replacement.pk, actor="staff@example.com")
    assert services.order_emails_send_pending() == 1
    [new_secret] = [item.secret for item in services.order_delivered_items(order) if not item.replaced]
    assert new_secret != bad_secret and new_secret in mailoutbox[-1].body and bad_secret not in mailoutbox[-1].body

    topup = SKU.objects.create(product=Product.objects.create(name="Phone credit", type=Product.Type.TOPUP), price=500)
    manual = services.order_place(lines=[LineRequest(topup.pk, 1, "13800138000")],
                                  contact="topup@example.com", query_password="1234")
    with django_capture_on_commit_callbacks(execute=True):
        pay(manual)
    services.order_emails_send_pending()  # "paid, the shop delivers shortly"
    with django_capture_on_commit_callbacks(execute=True):
        services.line_mark_delivered(line=manual.lines.get(), note="Credited, ref 77", actor="staff@example.com")
    assert services.order_emails_send_pending() == 1
    assert mailoutbox[-1].to == ["topup@example.com"] and "Credited, ref 77" in mailoutbox[-1].body


def test_orders_without_an_email_address_are_dropped_from_the_queue(shop, mailoutbox, wake_ups,
                                                                   django_capture_on_commit_callbacks):
    order = place(make_product(keys=1), contact="+8613800138000")  # a phone number as the contact
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)
    assert PendingOrderEmail.objects.count() == 1
    assert services.order_emails_send_pending() == 0
    assert not mailoutbox and not PendingOrderEmail.objects.exists()


def test_parallel_drains_send_each_email_once(committed_alpha, mailoutbox, wake_ups):  # noqa: F811
    sku = make_product(keys=40)
    for n in range(40):
        pay(place(sku, contact=f"p{n}@example.com"))
    assert PendingOrderEmail.objects.count() == 40 and Order.objects.filter(status="delivered").count() == 40
    sent = run_in_threads(4, lambda n: services.order_emails_send_pending())
    assert all(isinstance(count, int) for count in sent), sent
    assert sum(sent) == 40
    assert sorted(m.to[0] for m in mailoutbox) == sorted(f"p{n}@example.com" for n in range(40))
    assert not PendingOrderEmail.objects.exists()
