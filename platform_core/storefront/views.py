"""Storefront pages, rendered with the shop's theme from shop_templates/.

Views stay thin: forms check the shape of the input, services (orders, payments,
customers) decide, selectors read. Every service refusal comes back on the form with
the field it names — never a 500.
"""
from __future__ import annotations

import functools
import logging
import re
import secrets
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from platform_core.customers import services as customers
from platform_core.customers.models import Customer
from platform_core.money import format_minor
from platform_core.orders.models import Order, Ticket
from platform_core.orders.services import (
    LineRequest,
    MAX_QUANTITY,
    OrderError,
    order_cancel,
    order_delivered_items,
    order_lookup,
    order_place,
    ticket_open,
    ticket_reply,
    unit_price_for,
    wallet_topup_order,
)
from platform_core.payments.models import Payment
from platform_core.payments.selectors import MethodQuote, payment_method_fee_get, payment_method_quotes
from platform_core.payments.services import UnknownProvider, payment_providers, payment_start, payments_request_check
from platform_core.ratelimit import rate_limited
from platform_core.storefront import selectors
from platform_core.storefront.forms import (
    CheckoutForm,
    LoginForm,
    LookupForm,
    PayForm,
    RegisterForm,
    ReplyForm,
    TicketForm,
    TopupForm,
)
from platform_core.storefront.i18n import LANGUAGES, catalog, msg, reason_word, status_word, t
from plugins import hooks
from plugins.payment import PaymentError
from shop_templates.loader import render_theme

logger = logging.getLogger(__name__)

PAGE_SIZE = 24
HOT_LIMIT = 8
LANGUAGE_COOKIE_AGE = 60 * 60 * 24 * 365
LOOKUP_LIMIT_PER_MINUTE = 10
LOOKUP_LIMIT_PER_ORDER_PER_HOUR = 30
LOGIN_LIMIT_PER_MINUTE = 10
REGISTER_LIMIT_PER_HOUR = 20
QR_SESSION_KEY = "storefront_qr"
POLL_STATUSES = {Order.Status.PENDING_PAYMENT, Order.Status.PAID, Order.Status.PROCESSING,
                 Order.Status.AWAITING_STOCK}
PAID_STATUSES = {Order.Status.PAID, Order.Status.AWAITING_STOCK, Order.Status.PROCESSING, Order.Status.DELIVERED,
                 Order.Status.COMPLETED, Order.Status.REFUNDED}


# --- language, layout -----------------------------------------------------------------

def _chosen_language(request) -> str:
    """The same rule as the theme loader: ?lang=, then the cookie, then the shop's default."""
    language = request.GET.get("lang") or request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) \
        or getattr(request.tenant, "language", "en")
    return language if language in LANGUAGES else getattr(request.tenant, "language", "en")


def storefront_page(view):
    """Activates the buyer's language before the view runs (forms and messages are
    translated) and remembers an explicit ?lang= choice in a cookie."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        language = _chosen_language(request)
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = view(request, *args, **kwargs)
        chosen = request.GET.get("lang")
        if chosen in LANGUAGES and request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) != chosen:
            response.set_cookie(settings.LANGUAGE_COOKIE_NAME, chosen, max_age=LANGUAGE_COOKIE_AGE,
                                samesite="Lax", httponly=True, secure=request.is_secure())
        return response

    return wrapper


def _lang_urls(request) -> dict[str, str]:
    params = request.GET.copy()
    urls = {}
    for language in LANGUAGES:
        params["lang"] = language
        urls[language.split("-")[0]] = f"{request.path}?{params.urlencode()}"
    return urls  # {"en": …, "zh": …}


def _customer(request) -> Customer | None:
    if not hasattr(request, "_storefront_customer"):
        request._storefront_customer = customers.current_customer(request)
    return request._storefront_customer


def render(request, name: str, context: dict | None = None, status: int = 200):
    base = {
        "T": catalog(),
        "banners": hooks.collect("storefront_banners", request=request),
        "customer": _customer(request),
        "lang_urls": _lang_urls(request),
        "currency": request.tenant.currency,
    }
    response = render_theme(request, name, {**base, **(context or {})}, status=status)
    response["Cache-Control"] = "private, no-cache"
    return response


def _money(amount: int, currency: str) -> str:
    return format_minor(amount, currency)


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _error_status(exc) -> int:
    status = getattr(exc, "status", 400)
    return status if 400 <= status < 500 else 400


# --- catalog pages ----------------------------------------------------------------------

def _cards(products, currency: str) -> list:
    for product in products:
        price = _money(product.min_price, currency)
        product.price_text = msg("price_from", price=price) if product.max_price != product.min_price else price
        product.in_stock = selectors.product_in_stock(product)
    return products


@require_GET
@storefront_page
def home(request, category_id: int | None = None):
    category = None
    if category_id is not None:
        category = selectors.category_visible(category_id)
        if category is None:
            raise Http404("No such category")
    query = (request.GET.get("q") or "").strip()[:selectors.SEARCH_MAX_LENGTH]
    products = selectors.products_search(query=query, category=category)
    page = Paginator(products, PAGE_SIZE).get_page(request.GET.get("page"))
    currency = request.tenant.currency
    hot = []
    if not query and category is None and page.number == 1:
        hot = _cards(selectors.products_hot(HOT_LIMIT), currency)
    page_params = {k: v for k, v in (("q", query),) if v}
    return render(request, "home.html", {
        "categories": selectors.categories_tree(),
        "category": category,
        "query": query,
        "hot": hot,
        "products": _cards(list(page.object_list), currency),
        "page": page,
        "prev_url": f"?{urlencode({**page_params, 'page': page.previous_page_number()})}" if page.has_previous() else "",
        "next_url": f"?{urlencode({**page_params, 'page': page.next_page_number()})}" if page.has_next() else "",
    })


def _int_param(value, default: int) -> int:
    try:
        return int(str(value)) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _draft_providers(order: Order) -> list:
    """Payment methods for an order not placed yet (a draft: total, buyer, kind)."""
    try:
        return payment_providers(order)
    except Exception:  # noqa: BLE001 - a provider that cannot judge a draft is judged on the real order
        return payment_providers()


def _method_json(methods: list[MethodQuote], currency: str) -> list[dict]:
    return [{"provider": m.slug, "fee": m.quote.buyer_fee, "amount": m.quote.amount,
             "fee_text": msg("fee_plus", fee=_money(m.quote.buyer_fee, currency)) if m.quote.buyer_fee else "",
             "amount_text": _money(m.quote.amount, currency)} for m in methods]


def _payment_rows(bound_field, methods: list[MethodQuote], currency: str) -> list[dict]:
    """Each payment radio with the fee the buyer pays with it and the amount to pay, so
    both are on screen before the buyer chooses (docs/decisions/0025)."""
    by_slug = {row["provider"]: row for row in _method_json(methods, currency)}
    rows = []
    for radio in bound_field:
        row = by_slug.get(str(radio.data["value"]), {})
        rows.append({"radio": radio, "slug": radio.data["value"], "fee_text": row.get("fee_text", ""),
                     "amount_text": row.get("amount_text", "")})
    return rows


def _chosen_amount_text(form, methods: list[MethodQuote], currency: str) -> str:
    """The amount to pay with the method the form has chosen ("—" until one is chosen)."""
    chosen = str(form["payment"].value() or "")
    method = next((m for m in methods if m.slug == chosen), None)
    return _money(method.quote.amount, currency) if method is not None else "—"


def _fee_rule_text(provider, currency: str) -> str:
    """'(+0.6% + ¥0.10 fee)' for a method whose fee the buyer pays (amount not known yet)."""
    rule = payment_method_fee_get(provider.slug)
    if rule is None or not rule.passed_to_buyer or not provider.takes_fees() or not (rule.fixed or rule.basis_points):
        return ""
    parts = []
    if rule.basis_points:
        parts.append(f"{rule.basis_points // 100}.{rule.basis_points % 100:02d}".rstrip("0").rstrip(".") + "%")
    if rule.fixed:
        parts.append(_money(rule.fixed, currency))
    return msg("fee_plus", fee=" + ".join(parts))


def _price_quote(view, sku_view, quantity: int, customer) -> dict:
    product = view.product
    quantity = max(product.min_quantity, min(quantity, product.max_quantity, MAX_QUANTITY))
    unit = unit_price_for(sku=sku_view.sku, quantity=quantity, customer=customer)
    return {"quantity": quantity, "unit": unit, "total": unit * quantity}


@require_http_methods(["GET", "POST"])
@storefront_page
def product(request, product_id: int):
    view = selectors.product_detail(product_id)
    if view is None:
        raise Http404("No such product")
    customer = _customer(request)
    currency = request.tenant.currency
    chosen = view.sku(request.POST.get("sku") if request.method == "POST" else request.GET.get("sku")) \
        or view.default_sku
    asked = request.POST.get("quantity") if request.method == "POST" else request.GET.get("qty")
    quote = _price_quote(view, chosen, _int_param(asked, view.product.min_quantity), customer)
    draft = Order(kind=Order.Kind.PURCHASE, customer=customer, currency=currency, subtotal=quote["total"],
                  total=quote["total"])
    providers = _draft_providers(draft)
    status = 200
    if request.method == "POST":
        form = CheckoutForm(request.POST, product_view=view, customer=customer, providers=providers)
        if form.is_valid():
            placed = _place(request, form, customer)
            if not isinstance(placed, Order):
                status = placed
            else:
                return _start_payment(request, placed, form.cleaned_data["payment"])
        else:
            status = 400
        if status != 200:
            form.data = form.data.copy()
            if form.errors.get("token"):  # a fresh token for the next try
                form.data["token"] = secrets.token_urlsafe(16)
    else:
        form = CheckoutForm(initial={"token": secrets.token_urlsafe(16), "sku": chosen.sku.pk,
                                     "quantity": quote["quantity"]},
                            product_view=view, customer=customer, providers=providers)
    methods = payment_method_quotes(providers=providers, order_total=quote["total"])
    selected = str(chosen.sku.pk)
    sku_rows = [{"id": str(s.sku.pk), "name": s.sku.name or view.product.name, "price_text": _money(s.sku.price, currency),
                 "in_stock": s.in_stock, "selected": str(s.sku.pk) == selected,
                 "tiers": [{"min_quantity": tier.min_quantity, "price_text": _money(tier.unit_price, currency)}
                           for tier in s.tiers]}
                for s in view.skus]
    return render(request, "product.html", {
        "view": view,
        "product": view.product,
        "chosen": chosen,
        "form": form,
        "providers": providers,
        "payment_rows": _payment_rows(form["payment"], methods, currency),
        # with a fee passed to the buyer, what the chosen method costs next to the total
        "pay_total_text": _chosen_amount_text(form, methods, currency)
        if any(m.quote.passed_to_buyer for m in methods) else "",
        "sku_rows": sku_rows,
        "has_tiers": any(row["tiers"] for row in sku_rows),
        "unit_text": _money(quote["unit"], currency),
        "total_text": _money(quote["total"], currency),
        "members_only_blocked": view.product.member_only and customer is None,
        "quantity_range": msg("quantity_range", min=view.product.min_quantity,
                              max=min(view.product.max_quantity, MAX_QUANTITY)),
    }, status=status)


def _normal_contact(contact: str) -> str:
    contact = (contact or "").strip()
    return contact.lower() if "@" in contact else re.sub(r"[\s-]", "", contact)


def _place(request, form: CheckoutForm, customer) -> Order | int:
    """Place the order; on refusal put the error on the form and return a status."""
    data = form.cleaned_data
    try:
        order = order_place(
            lines=[LineRequest(sku_id=data["sku"].sku.pk, quantity=data["quantity"], account=data.get("account", ""))],
            contact=data.get("contact", ""), query_password=data.get("query_password", ""), customer=customer,
            ip=_client_ip(request), idempotency_key=f"storefront:{data['token']}",
            language=request.LANGUAGE_CODE,
        )
    except OrderError as exc:
        form.add_service_error(exc.field, t(exc.message))
        return _error_status(exc)
    # the same form sent twice returns the first order: only its own buyer gets it
    same_buyer = (order.customer_id == customer.pk) if customer is not None else \
        (order.customer_id is None and order.contact == _normal_contact(data.get("contact", "")))
    if not same_buyer:
        form.add_error("token", msg("form_expired"))
        return 409
    selectors.session_grant_order(request.session, order)
    return order


def _order_url(order: Order) -> str:
    return reverse("storefront:order", args=[order.number])


def _start_payment(request, order: Order, provider_slug: str):
    """Ask the provider how to pay and send the buyer there (redirect / QR / instant)."""
    return_url = request.build_absolute_uri(_order_url(order)) + "?" + urlencode({"t": order.access_token})
    notify_url = request.build_absolute_uri(f"/hooks/payments/{provider_slug}/")
    try:
        _payment, action = payment_start(order=order, provider_slug=provider_slug, return_url=return_url,
                                         notify_url=notify_url)
    except PaymentError as exc:
        if exc.buyer_message != exc.message:  # a message for staff: in the log, not on the buyer's screen
            logger.warning("payment start failed: provider=%s order=%s: %s", provider_slug, order.number,
                           exc.message)
        messages.error(request, f"{msg('payment_failed')}: {t(exc.buyer_message)}")
        return redirect(_order_url(order))
    except UnknownProvider:
        messages.error(request, f"{msg('payment_failed')}: {t('The payment method is not available for this order.')}")
        return redirect(_order_url(order))
    if action.kind == "redirect" and action.url.startswith(("https://", "http://")):
        return HttpResponseRedirect(action.url)
    if action.kind in ("qr", "redirect") and (action.qr_text or action.url):
        qr = dict(request.session.get(QR_SESSION_KEY) or {})
        qr[order.number] = {"text": action.qr_text or action.url, "url": action.url, "message": action.message}
        request.session[QR_SESSION_KEY] = dict(list(qr.items())[-10:])
    return redirect(_order_url(order))


@require_GET
@storefront_page
def product_price(request, product_id: int):
    """The server's price for an option and quantity (the product page asks while the buyer chooses)."""
    view = selectors.product_detail(product_id)
    if view is None:
        return JsonResponse({"error": "not_found"}, status=404)
    chosen = view.sku(request.GET.get("sku")) or view.default_sku
    customer = _customer(request)
    quote = _price_quote(view, chosen, _int_param(request.GET.get("qty"), view.product.min_quantity), customer)
    currency = request.tenant.currency
    draft = Order(kind=Order.Kind.PURCHASE, customer=customer, currency=currency, subtotal=quote["total"],
                  total=quote["total"])
    methods = payment_method_quotes(providers=_draft_providers(draft), order_total=quote["total"])
    return JsonResponse({"sku": chosen.sku.pk, "quantity": quote["quantity"], "unit": quote["unit"],
                         "total": quote["total"], "unit_text": _money(quote["unit"], currency),
                         "total_text": _money(quote["total"], currency), "in_stock": chosen.in_stock,
                         "currency": currency, "methods": _method_json(methods, currency)})


# --- order page -------------------------------------------------------------------------

def _owned_order(request, number: str) -> Order:
    token = request.GET.get("t", "") if request.method == "GET" else ""
    order = selectors.order_for_buyer(number, session=request.session, customer=_customer(request), token=token)
    if order is None:
        raise Http404("No such order")
    if token:
        selectors.session_grant_order(request.session, order)
    return order


def _order_context(request, order: Order, **extra) -> dict:
    currency = order.currency
    lines = [{"title": line.title, "quantity": line.quantity, "unit_text": _money(line.unit_price, currency),
              "total_text": _money(line.total, currency), "account": line.account}
             for line in order.lines.all()]
    paid = order.status in PAID_STATUSES
    items = order_delivered_items(order) if paid else []
    tickets = []
    if order.kind == Order.Kind.PURCHASE:
        for ticket in order.tickets.prefetch_related("messages").order_by("-id"):
            tickets.append({"ticket": ticket, "reason": reason_word(ticket.reason),
                            "status": msg(f"ticket_status_{ticket.status}"),
                            "messages": list(ticket.messages.all()),
                            "reply_form": extra.pop(f"reply_form_{ticket.pk}", None) or ReplyForm(
                                auto_id=f"reply{ticket.pk}_%s")})
    pending = order.status == Order.Status.PENDING_PAYMENT
    providers = payment_providers(order) if pending else []
    methods = payment_method_quotes(providers=providers, order_total=order.total) if pending else []
    pay_form = PayForm(providers=providers) if pending else None
    qr = (request.session.get(QR_SESSION_KEY) or {}).get(order.number) if pending else None
    # the fee the buyer paid on top of the total, when there was one
    paid_with = order.payments.filter(status=Payment.Status.SUCCEEDED).first() if paid else None
    buyer_fee = paid_with.buyer_fee if paid_with is not None else 0
    context = {
        "order": order,
        "status_word": status_word(order.status),
        "lines": lines,
        "subtotal_text": _money(order.subtotal, currency),
        "discount_text": _money(order.discount, currency) if order.discount else "",
        "total_text": _money(order.total, currency),
        "refunded_text": _money(order.refunded_amount, currency) if order.refunded_amount else "",
        "items": items,
        "all_keys": "\n".join(item.secret for item in items if not item.replaced),
        "pending": pending,
        "paid": paid,
        "poll": order.status in POLL_STATUSES,
        "pay_form": pay_form,
        "payment_rows": _payment_rows(pay_form["payment"], methods, currency) if pending else [],
        "pay_total_text": _money(methods[0].quote.amount if methods else order.total, currency),
        "fee_paid_text": _money(buyer_fee, currency) if buyer_fee else "",
        "amount_paid_text": _money(paid_with.amount, currency) if buyer_fee else "",
        "providers": providers,
        "qr": qr,
        "ticket_form": extra.pop("ticket_form", None) or (TicketForm() if paid and order.kind == Order.Kind.PURCHASE
                                                          else None),
        "tickets": tickets,
        "is_topup": order.kind == Order.Kind.WALLET_TOPUP,
    }
    context.update(extra)
    return context


@never_cache
@require_GET
@storefront_page
def order_page(request, number: str):
    order = _owned_order(request, number)
    if order.status == Order.Status.PENDING_PAYMENT:  # back from the gateway's page, perhaps
        payments_request_check(order_number=order.number)
    response = render(request, "order.html", _order_context(request, order))
    response["Cache-Control"] = "no-store, private"
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_GET
def order_status(request, number: str):
    """Polled every second by the order page: just the status, same ownership rule."""
    status = selectors.order_status_for_buyer(number, session=request.session,
                                              customer_id=request.session.get(customers.SESSION_KEY))
    if status is None:
        return JsonResponse({"error": "not_found"}, status=404)
    if status == Order.Status.PENDING_PAYMENT:
        payments_request_check(order_number=number)
    return JsonResponse({"status": status})


@require_POST
@storefront_page
def order_pay(request, number: str):
    order = _owned_order(request, number)
    form = PayForm(request.POST, providers=payment_providers(order))
    if not form.is_valid():
        messages.error(request, f"{msg('payment_failed')}: {t('The payment method is not available for this order.')}")
        return redirect(_order_url(order))
    return _start_payment(request, order, form.cleaned_data["payment"])


@require_POST
@storefront_page
def order_cancel_view(request, number: str):
    order = _owned_order(request, number)
    try:
        order_cancel(order=order, actor="buyer")
    except OrderError as exc:
        messages.error(request, t(exc.message))
    else:
        messages.success(request, msg("order_cancelled"))
    return redirect(_order_url(order))


def _service_error(form, exc: OrderError, form_key: str) -> dict:
    """A refusal about a field goes on the form; anything else on top of the page."""
    if exc.field in form.fields:
        form.add_error(exc.field, t(exc.message))
        return {form_key: form}
    return {"page_error": t(exc.message)}


@require_POST
@storefront_page
def ticket_open_view(request, number: str):
    order = _owned_order(request, number)
    form = TicketForm(request.POST)
    if form.is_valid():
        try:
            ticket_open(order=order, reason=form.cleaned_data["reason"], message=form.cleaned_data["message"])
        except OrderError as exc:
            return render(request, "order.html", _order_context(request, order, **_service_error(form, exc, "ticket_form")),
                          status=_error_status(exc))
        messages.success(request, msg("ticket_opened"))
        return redirect(_order_url(order) + "#tickets")
    return render(request, "order.html", _order_context(request, order, ticket_form=form), status=400)


@require_POST
@storefront_page
def ticket_reply_view(request, number: str, ticket_id: int):
    order = _owned_order(request, number)
    ticket = Ticket.objects.filter(pk=ticket_id, order=order).first()
    if ticket is None:
        raise Http404("No such ticket")
    form = ReplyForm(request.POST, auto_id=f"reply{ticket.pk}_%s")
    if form.is_valid():
        try:
            ticket_reply(ticket=ticket, body=form.cleaned_data["body"], from_staff=False)
        except OrderError as exc:
            return render(request, "order.html",
                          _order_context(request, order, **_service_error(form, exc, f"reply_form_{ticket.pk}")),
                          status=_error_status(exc))
        messages.success(request, msg("reply_sent"))
        return redirect(_order_url(order) + "#tickets")
    return render(request, "order.html", _order_context(request, order, **{f"reply_form_{ticket.pk}": form}),
                  status=400)


# --- lookup (查单) ------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@storefront_page
def lookup(request):
    if request.method == "GET":
        return render(request, "lookup.html", {"form": LookupForm()})
    form = LookupForm(request.POST)
    if rate_limited(request, "storefront-lookup", limit=LOOKUP_LIMIT_PER_MINUTE, window_seconds=60):
        return render(request, "lookup.html", {"form": LookupForm(), "error": msg("too_many_tries")}, status=429)
    if form.is_valid():
        number = form.cleaned_data["number"].strip()
        if rate_limited(request, "storefront-lookup-order", limit=LOOKUP_LIMIT_PER_ORDER_PER_HOUR,
                        window_seconds=3600, key=number):
            return render(request, "lookup.html", {"form": LookupForm(), "error": msg("too_many_tries")},
                          status=429)
        order = order_lookup(number=number, contact=form.cleaned_data["contact"],
                             query_password=form.cleaned_data["query_password"])
        if order is not None:
            selectors.session_grant_order(request.session, order)
            return redirect(_order_url(order))
    # one answer for every miss: never reveal whether the number exists
    return render(request, "lookup.html", {"form": LookupForm(initial={"number": request.POST.get("number", "")[:24]}),
                                           "error": msg("lookup_failed")}, status=400)


# --- customer account -------------------------------------------------------------------

def _next_url(request, default: str = "/account/") -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()},
                                                     require_https=request.is_secure()):
        return candidate
    return default


@require_http_methods(["GET", "POST"])
@storefront_page
def register(request):
    if _customer(request) is not None:
        return redirect("storefront:account")
    form = RegisterForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if rate_limited(request, "storefront-register", limit=REGISTER_LIMIT_PER_HOUR, window_seconds=3600):
            form.add_error(None, msg("too_many_tries"))
            status = 429
        elif form.is_valid():
            try:
                customer = customers.customer_register(login=form.cleaned_data["login"],
                                                       password=form.cleaned_data["password"],
                                                       name=form.cleaned_data.get("name", ""))
            except customers.CustomerError as exc:
                form.add_service_error(exc.field, t(exc.message))
            else:
                customers.customer_login(request, customer)
                messages.success(request, msg("welcome"))
                return redirect(_next_url(request))
    return render(request, "register.html", {"form": form, "next": _next_url(request, "")}, status=status)


@require_http_methods(["GET", "POST"])
@storefront_page
def login(request):
    if _customer(request) is not None and request.method == "GET":
        return redirect(_next_url(request))
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        limited = rate_limited(request, "storefront-login", limit=LOGIN_LIMIT_PER_MINUTE, window_seconds=60)
        if limited:
            form.add_error(None, msg("too_many_tries"))
            status = 429
        elif form.is_valid():
            customer = customers.customer_authenticate(login=form.cleaned_data["login"],
                                                       password=form.cleaned_data["password"])
            if customer is None:
                form.add_error(None, msg("login_failed"))
            else:
                customers.customer_login(request, customer)
                return redirect(_next_url(request))
    return render(request, "login.html", {"form": form, "next": _next_url(request, "")}, status=status)


@require_POST
@storefront_page
def logout(request):
    customers.customer_logout(request)
    messages.success(request, msg("signed_out"))
    return redirect("storefront:home")


def _topup_providers(customer, currency: str) -> list:
    draft = Order(kind=Order.Kind.WALLET_TOPUP, customer=customer, currency=currency, subtotal=100, total=100)
    return _draft_providers(draft)


@require_GET
@storefront_page
def account(request):
    customer = _customer(request)
    if customer is None:
        return redirect(f"{reverse('storefront:login')}?{urlencode({'next': request.path})}")
    return _account_page(request, customer, TopupForm(currency=request.tenant.currency,
                                                      providers=_topup_providers(customer, request.tenant.currency)))


def _account_page(request, customer, topup_form, status: int = 200):
    currency = request.tenant.currency
    orders = [{"order": order, "status_word": status_word(order.status), "total_text": _money(order.total, order.currency),
               "title": ", ".join(line.title for line in order.lines.all()) or msg("wallet_topup_title")}
              for order in selectors.customer_orders(customer)]
    entries = [{"entry": entry, "kind": msg(f"entry_{entry.kind}"),
                "amount_text": ("+" if entry.amount > 0 else "") + _money(entry.amount, currency),
                "balance_text": _money(entry.balance_after, currency)}
               for entry in selectors.customer_wallet_entries(customer)]
    providers = {p.slug: p for p in _topup_providers(customer, currency)}
    topup_rows = [{"radio": radio, "slug": radio.data["value"],
                   "fee_text": _fee_rule_text(providers[radio.data["value"]], currency)
                   if radio.data["value"] in providers else ""} for radio in topup_form["payment"]]
    response = render(request, "account.html", {
        "orders": orders, "entries": entries, "balance_text": _money(customer.wallet_balance, currency),
        "topup_form": topup_form, "topup_rows": topup_rows, "can_top_up": bool(topup_form.fields["payment"].choices),
    }, status=status)
    response["Cache-Control"] = "no-store, private"
    return response


@require_POST
@storefront_page
def account_topup(request):
    customer = _customer(request)
    if customer is None:
        return redirect("storefront:login")
    currency = request.tenant.currency
    form = TopupForm(request.POST, currency=currency, providers=_topup_providers(customer, currency))
    if form.is_valid():
        try:
            order = wallet_topup_order(customer=customer, amount=form.cleaned_data["amount"], ip=_client_ip(request))
        except OrderError as exc:
            form.add_service_error(exc.field, t(exc.message))
            return _account_page(request, customer, form, status=_error_status(exc))
        selectors.session_grant_order(request.session, order)
        return _start_payment(request, order, form.cleaned_data["payment"])
    return _account_page(request, customer, form, status=400)
