"""Gateway webhooks: ``POST /hooks/payments/<slug>/`` on the shop's host for the main
merchant account, ``/hooks/payments/<slug>/<account>/`` for each other account (the
account's own credentials verify it; decision 0029).

Thin on purpose: the provider verifies and translates, ``record_event`` applies each
event exactly once. A lock wait that runs out answers 503 and an event that came before
the one it depends on (a refund before the payment's success) answers 409, so the
gateway sends it again later."""
from __future__ import annotations

import logging

from django.db import OperationalError, connection
from django.http import HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from platform_core.payments.services import payment_providers, record_event
from plugins.base import MAIN_ACCOUNT
from plugins.payment import WebhookRejected

logger = logging.getLogger(__name__)

#: how long a webhook waits for a row another request holds before giving up with 503
LOCK_TIMEOUT = "5s"


def _text(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


@csrf_exempt  # gateways cannot send a CSRF token; the provider verifies the signature instead
@require_http_methods(["GET", "POST"])
def payment_webhook(request, slug: str, account: str = MAIN_ACCOUNT):
    shop = getattr(connection, "tenant", None)
    provider = next((p for p in payment_providers() if p.slug == slug), None)
    if provider is None:  # unknown, or not enabled in this shop
        return _text("No such payment method here.", 404)
    # a disabled account takes no new payments but still hears about the ones it took
    provider = provider.bound_to(account)
    if provider is None:
        return _text("No such payment method here.", 404)
    # POST only, unless the gateway notifies by GET (EPay); either way the provider verifies
    if request.method not in getattr(provider, "webhook_methods", ("POST",)):
        return HttpResponseNotAllowed(getattr(provider, "webhook_methods", ("POST",)))
    try:
        events = provider.handle_webhook(request)
    except WebhookRejected as exc:
        logger.warning("payment webhook rejected: shop=%s provider=%s status=%s reason=%s",
                       getattr(shop, "schema_name", "?"), slug, exc.status, exc.message)
        return _text(exc.message, exc.status)
    try:  # each event in a transaction of its own: one applied before a failure is a duplicate when re-sent
        results = [record_event(provider=slug, event=event, account=account, lock_timeout=LOCK_TIMEOUT)
                   for event in events]
    except OperationalError as exc:
        logger.warning("payment webhook deferred: shop=%s provider=%s: %s", getattr(shop, "schema_name", "?"),
                       slug, type(exc).__name__)
        return _text("Busy; send this event again later.", 503)
    if "account_mismatch" in results:  # signed by one account, naming another's payment
        logger.warning("payment webhook refused: shop=%s provider=%s account=%s: event names another account's "
                       "payment", getattr(shop, "schema_name", "?"), slug, account)
        return _text("This event does not belong to this merchant account.", 400)
    if "deferred" in results:  # an event that came before the one it depends on: send it again later
        return _text("This event came before the one it depends on; send it again later.", 409)
    return provider.webhook_response(results)
