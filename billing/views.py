"""Billing pages: the shop console's billing page (plan, usage, invoices, pay, change
plan, cancel), signed invoice downloads, the platform gateway webhook, and the platform
console's revenue dashboard. Thin: services and selectors do the work."""
from __future__ import annotations

import logging
from datetime import date

from django.contrib import messages
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import OperationalError, connection, transaction
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import collection, invoicing, selectors, services
from billing.gateway import billing_gateway
from billing.limits import shop_usage
from billing.models import CollectionAttempt, Invoice
from plugins.payment import PaymentError, WebhookRejected

logger = logging.getLogger(__name__)
BILLING_ROLES = {"owner", "finance"}  # who may pay, change plan or cancel
INVOICE_READERS = {"owner", "admin", "finance"}  # who sees invoices; staff see plan and usage only


def _shop_role(request):
    from platform_core.admin_sites import shop_role

    return shop_role(request)


def _require_billing_role(request):
    if _shop_role(request) not in BILLING_ROLES:
        raise PermissionDenied("Only the shop's owner and finance members handle billing.")


def _platform_url(path: str) -> str:
    from django.conf import settings

    port = "" if settings.PRODUCTION or settings.PORT in (80, 443) else f":{settings.PORT}"
    return f"{settings.PLATFORM_SCHEME}://{settings.PLATFORM_DOMAIN}{port}{path}"


# --- shop console --------------------------------------------------------------------

def shop_billing_view(request):
    from platform_core.admin_sites import shop_console

    shop = request.tenant
    subscription = selectors.subscription_for(shop)
    attempt_id = request.GET.get("attempt", "")
    if attempt_id.isdigit():  # back from the gateway: the webhook may not have arrived yet
        attempt = CollectionAttempt.objects.filter(pk=int(attempt_id), invoice__shop=shop).first()
        if attempt is not None:
            try:
                collection.collection_refresh(attempt=attempt)
            except PaymentError as exc:
                messages.warning(request, exc.message)
            subscription = selectors.subscription_for(shop)
    today = timezone.localdate()
    first = today.replace(day=1)
    invoices = [(invoice, selectors.amount_due(invoice)) for invoice in selectors.invoices_for_shop(shop)[:50]] \
        if _shop_role(request) in INVOICE_READERS else []
    context = {
        **shop_console.each_context(request), "title": "Billing", "subscription": subscription,
        "usage": shop_usage(shop), "month_usage": selectors.usage_between(shop, first, services.next_month_start(today)),
        "invoices": invoices, "plans": selectors.plans_on_offer(), "can_bill": _shop_role(request) in BILLING_ROLES,
        "can_see_invoices": _shop_role(request) in INVOICE_READERS,
        "daily_usage": selectors.daily_usage(shop),
        "saved_card": selectors.saved_card(shop, billing_gateway().slug),
    }
    return TemplateResponse(request, "billing/manage/billing.html", context)


@require_POST
def shop_change_plan_view(request):
    _require_billing_role(request)
    try:
        subscription = services.subscription_change_plan(shop=request.tenant, plan_code=request.POST.get("plan", ""),
                                                         actor=request.user, request=request)
    except services.BillingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"You are now on the {subscription.plan.name} plan. The fee is prorated by day.")
    return redirect("manage:billing")


@require_POST
def shop_cancel_view(request):
    _require_billing_role(request)
    try:
        if request.POST.get("resume"):
            services.subscription_resume(shop=request.tenant, actor=request.user, request=request)
            messages.success(request, "Your subscription continues.")
        else:
            services.subscription_cancel(shop=request.tenant, actor=request.user, request=request)
            messages.success(request, "Your subscription ends at the end of this month; "
                                      "the shop then continues on the Free plan.")
    except services.BillingError as exc:
        messages.error(request, exc.message)
    return redirect("manage:billing")


def _own_invoice(request, invoice_id) -> Invoice:
    invoice = selectors.invoices_for_shop(request.tenant).filter(pk=invoice_id).first()
    if invoice is None:  # another shop's invoice looks exactly like a missing one
        raise Http404("No such invoice.")
    return invoice


@require_POST
def shop_pay_view(request, invoice_id):
    _require_billing_role(request)
    invoice = _own_invoice(request, invoice_id)
    try:
        attempt = collection.invoice_pay_start(
            invoice=invoice, actor=request.user, request=request,
            return_url=request.build_absolute_uri("/manage/billing/") + "?attempt={attempt}",
            notify_url=_platform_url(collection.webhook_path()))
    except (services.BillingError, PaymentError) as exc:
        messages.error(request, exc.message)
        return redirect("manage:billing")
    return HttpResponseRedirect(attempt.pay_url)


def shop_invoice_download_view(request, invoice_id):
    if _shop_role(request) not in INVOICE_READERS:
        raise PermissionDenied("Only the shop's owner, admins and finance members see invoices.")
    invoice = _own_invoice(request, invoice_id)
    return HttpResponseRedirect(invoicing.invoice_download_url(invoice=invoice, host_prefix="/manage"))


# --- signed files (both hosts) -------------------------------------------------------

def signed_file_view(request, token):
    """The token is the permission: it names one stored PDF and expires."""
    try:
        invoice, url, handle = invoicing.invoice_open_signed(token)
    except signing.SignatureExpired:
        return HttpResponse("This download link has expired. Open the invoice list again for a fresh one.",
                            status=410, content_type="text/plain")
    except (signing.BadSignature, Invoice.DoesNotExist, KeyError, TypeError):
        raise Http404("No such file.") from None
    if url:
        return HttpResponseRedirect(url)
    return FileResponse(handle, as_attachment=True, filename=f"{invoice.number}.pdf", content_type="application/pdf")


# --- platform gateway webhook -------------------------------------------------------

@csrf_exempt  # the gateway signs its events; it cannot send a CSRF token
@require_POST
def gateway_webhook(request, provider):
    gateway = billing_gateway()
    if provider != gateway.hook_name:  # another provider's endpoint: nothing is listening there
        raise Http404("No such webhook endpoint.")
    try:
        events = gateway.handle_webhook(request)
    except WebhookRejected as exc:
        logger.warning("billing webhook rejected: %s", exc.message)
        return HttpResponse(exc.message, status=exc.status, content_type="text/plain")
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', '5s', true)")
            results = [collection.collection_record_event(event=event) for event in events]
    except OperationalError:
        return HttpResponse("Busy; send this event again later.", status=503, content_type="text/plain")
    return HttpResponse(",".join(results) or "ok", content_type="text/plain")


# --- platform console ----------------------------------------------------------------

def revenue_dashboard_view(request):
    from platform_core.admin_sites import platform_console

    today = timezone.localdate()
    try:
        months = max(1, min(int(request.GET.get("months", "1")), 24))
    except ValueError:
        months = 1
    first = today.replace(day=1)
    for _ in range(months - 1):
        first = (first.replace(day=1) - date.resolution).replace(day=1)
    end = services.next_month_start(today)
    summary = selectors.revenue_summary(first=first, end=end)
    peak = max([row["gmv"] for row in summary["daily_gmv"]] + [1])
    bars = [{"day": row["day"], "gmv": row["gmv"], "pct": max(0, round(100 * row["gmv"] / peak))}
            for row in summary["daily_gmv"]]
    context = {**platform_console.each_context(request), "title": "Revenue", "summary": summary, "bars": bars,
               "first": first, "end": end, "months": months}
    return TemplateResponse(request, "billing/console/revenue.html", context)
