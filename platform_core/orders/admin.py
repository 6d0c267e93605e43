"""Shop console (``/manage/``): orders, after-sales tickets and the checkout rules.

Orders and tickets are read-only pages; what staff do to them (refund, cancel, deliver
by hand, reply, reissue a key, close) are action pages that call
``orders.services``. Delivered keys are shown masked, never in plaintext."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from unfold.admin import ModelAdmin
from unfold.decorators import action
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextareaWidget

from platform_core.admin_sites import can_manage, shop_console
from platform_core.audit.services import audit_record
from platform_core.catalog.admin import MajorUnitsField, ReadOnlyInline, ShopRoleAccess, minor_to_major_text
from platform_core.money import format_minor
from platform_core.orders import selectors, services
from platform_core.orders.models import Order, OrderEvent, OrderLine, OrderSettings, Ticket
from platform_core.payments.models import Payment
from plugins.payment import PaymentError
from plugins.registry import UnknownPlugin

ACTION_TEMPLATE = "orders/console/action_form.html"


def _change_url(obj) -> str:
    return reverse(f"manage:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def _render_action(model_admin, request, obj, *, title, form=None, submit, intro="", summary=(), danger=False):
    context = {**model_admin.admin_site.each_context(request), "title": title, "form": form, "submit_label": submit,
               "intro": intro, "summary": summary, "danger": danger, "back_url": _change_url(obj),
               "opts": model_admin.model._meta, "original": obj}
    return TemplateResponse(request, ACTION_TEMPLATE, context)


def _posted(request):
    """Form data of a POST (even an empty one), None for a GET."""
    return request.POST if request.method == "POST" else None


def _only(model_admin, actions, wanted: set[str]):
    """The action buttons among ``actions`` whose method names are in ``wanted``."""
    prefix = f"{model_admin.model._meta.app_label}_{model_admin.model._meta.model_name}_"
    return [a for a in actions if a.action_name.removeprefix(prefix) in wanted]


def _service_error(form, exc, *, field_map=None) -> None:
    """Show a service's refusal next to the field it names, else above the form."""
    message = getattr(exc, "message", str(exc))
    field = (field_map or {}).get(getattr(exc, "field", ""), getattr(exc, "field", ""))
    form.add_error(field if form is not None and field in form.fields else None, message)


# --- forms of the action pages -------------------------------------------------------

class RefundForm(forms.Form):
    amount = MajorUnitsField(label="Amount to refund")
    reason = forms.CharField(max_length=300, widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
                             help_text="Kept in the order history and shown to the buyer on tickets.")

    def __init__(self, *args, order: Order, **kwargs):
        super().__init__(*args, **kwargs)
        remaining = selectors.order_refundable_amount(order)
        self.fields["amount"].initial = minor_to_major_text(remaining, order.currency)
        self.fields["amount"].help_text = (f"Up to {format_minor(remaining, order.currency)} "
                                           "(the whole remainder refunds the order fully).")

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount is None or amount <= 0:
            raise forms.ValidationError("Refund a positive amount.")
        return amount


class DeliverForm(forms.Form):
    line = forms.TypedChoiceField(coerce=int, label="Line", widget=UnfoldAdminSelectWidget)
    note = forms.CharField(max_length=4000, widget=UnfoldAdminTextareaWidget(attrs={"rows": 4}),
                           help_text="What the buyer receives: a code, account details or a confirmation. "
                                     "Stored encrypted.")

    def __init__(self, *args, lines: list[OrderLine], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["line"].choices = [(line.pk, f"{line.title} × {line.quantity}"
                                        + (f" → {line.account}" if line.account else "")) for line in lines]


class ReplyForm(forms.Form):
    body = forms.CharField(label="Reply", max_length=4000, widget=UnfoldAdminTextareaWidget(attrs={"rows": 4}))


class ReissueForm(forms.Form):
    delivered_key = forms.TypedChoiceField(coerce=int, label="Key that does not work", widget=UnfoldAdminSelectWidget)

    def __init__(self, *args, keys, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["delivered_key"].choices = [(key.delivered_key_id, f"{key.line_title}: {key.masked}")
                                                for key in keys if not key.replaced]


class ConfirmForm(forms.Form):
    pass


# --- orders --------------------------------------------------------------------------

class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ("title", "product_type", "quantity", "unit_price_formatted", "total_formatted", "account",
              "delivered_quantity")
    readonly_fields = fields
    verbose_name_plural = "Lines"

    @admin.display(description="Unit price")
    def unit_price_formatted(self, line):
        return format_minor(line.unit_price, line.order.currency)

    @admin.display(description="Total")
    def total_formatted(self, line):
        return format_minor(line.total, line.order.currency)


class PaymentInline(ReadOnlyInline):
    model = Payment
    # staff see which merchant account took a payment (buyers never do)
    fields = ("provider", "account", "amount_formatted", "fee_formatted", "status", "external_id", "refunds",
              "created_at",
              "succeeded_at")
    readonly_fields = fields
    verbose_name_plural = "Payments and refunds"

    @admin.display(description="Amount")
    def amount_formatted(self, payment):
        return format_minor(payment.amount, payment.currency)

    @admin.display(description="Payment fee")
    def fee_formatted(self, payment):
        if not payment.fee:
            return "—"
        who = "paid by the buyer, in the amount" if payment.fee_paid_by_buyer else "borne by the shop"
        return f"{format_minor(payment.fee, payment.currency)} ({who})"

    @admin.display(description="Refunds")
    def refunds(self, payment):
        rows = payment.refunds.order_by("id")
        if not rows:
            return "—"
        return format_html_join(
            "", "<div>{} · {} · {} · {}</div>",
            ((format_minor(r.amount, payment.currency), r.status, r.created_by, r.reason) for r in rows))


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ("created_at", "kind", "from_status", "to_status", "message", "actor")
    readonly_fields = fields
    verbose_name_plural = "History"


@admin.register(Order, site=shop_console)
class OrderAdmin(ShopRoleAccess, ModelAdmin):
    list_display = ("number", "created_at", "contact", "status", "total_formatted", "payment_method")
    list_filter = ("status", "kind")
    search_fields = ("number", "contact")
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over a big order table on every page
    inlines = [OrderLineInline, PaymentInline, OrderEventInline]
    fieldsets = (
        (None, {"fields": ("number", "kind", "status", "created_at", "paid_at", "delivered_at", "reserved_until")}),
        ("Buyer", {"fields": ("contact", "customer", "ip", "language")}),
        ("Amounts", {"fields": ("subtotal_formatted", "discount_formatted", "total_formatted",
                                "refunded_formatted", "payment_method")}),
        ("Delivered keys", {"fields": ("delivered_keys",)}),
    )
    readonly_fields = ("number", "kind", "status", "created_at", "paid_at", "delivered_at", "reserved_until",
                       "contact", "customer", "ip", "language", "subtotal_formatted", "discount_formatted",
                       "total_formatted", "refunded_formatted", "payment_method", "delivered_keys")
    actions_detail = ["refund_action", "cancel_action", "deliver_action"]

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # orders change only through the actions below

    @admin.display(description="Subtotal")
    def subtotal_formatted(self, order):
        return format_minor(order.subtotal, order.currency)

    @admin.display(description="Discount")
    def discount_formatted(self, order):
        return format_minor(order.discount, order.currency)

    @admin.display(description="Total", ordering="total")
    def total_formatted(self, order):
        return format_minor(order.total, order.currency)

    @admin.display(description="Refunded")
    def refunded_formatted(self, order):
        return format_minor(order.refunded_amount, order.currency)

    @admin.display(description="Keys (masked)")
    def delivered_keys(self, order):
        keys = selectors.order_keys_masked(order)
        if not keys:
            return "—"
        return format_html_join("", '<div><code>{}</code> {}{}</div>', (
            (key.masked, key.line_title, " (replaced)" if key.replaced else "") for key in keys))

    # which action buttons make sense for the order's state
    def get_actions_detail(self, request, object_id):
        actions = super().get_actions_detail(request, object_id)
        order = Order.objects.filter(pk=object_id).first()
        if order is None:
            return actions
        wanted = set()
        if order.status in (Order.Status.PENDING_PAYMENT,):
            wanted.add("cancel_action")
        if selectors.order_refundable_amount(order) > 0 and order.payments.filter(status="succeeded").exists():
            wanted.add("refund_action")
        if order.status in (Order.Status.PAID, Order.Status.PROCESSING) and selectors.order_lines_awaiting_staff(order):
            wanted.add("deliver_action")
        return _only(self, actions, wanted)

    def _order(self, object_id) -> Order:
        order = Order.objects.filter(pk=object_id).first()
        if order is None:
            raise Http404("No such order in this shop.")
        return order

    @action(description="Refund", url_path="refund", permissions=["manage"])
    def refund_action(self, request, object_id):
        order = self._order(object_id)
        form = RefundForm(_posted(request), order=order)
        if request.method == "POST" and form.is_valid():
            try:
                services.order_refund(order=order, amount=form.cleaned_data["amount"],
                                      reason=form.cleaned_data["reason"], actor=request.user)
            except (services.OrderError, PaymentError, UnknownPlugin) as exc:
                _service_error(form, exc)
            else:
                messages.success(request, f"Refunded {format_minor(form.cleaned_data['amount'], order.currency)}.")
                return HttpResponseRedirect(_change_url(order))
        return _render_action(self, request, order, title=f"Refund order {order.number}", form=form,
                              submit="Refund", danger=True, summary=_order_summary(order),
                              intro="The money goes back through the payment method the buyer used. A payment fee "
                                    "the buyer paid is returned with the refund that completes the order, "
                                    "never with a partial one.")

    @action(description="Cancel", url_path="cancel", permissions=["manage"])
    def cancel_action(self, request, object_id):
        order = self._order(object_id)
        form = ConfirmForm(_posted(request))
        if request.method == "POST" and form.is_valid():
            try:
                services.order_cancel(order=order, actor=request.user.email)
            except services.OrderError as exc:
                _service_error(form, exc)
            else:
                messages.success(request, f"Order {order.number} cancelled; its keys are back in stock.")
                return HttpResponseRedirect(_change_url(order))
        return _render_action(self, request, order, title=f"Cancel order {order.number}", form=form,
                              submit="Cancel the order", danger=True, summary=_order_summary(order),
                              intro="Only unpaid orders can be cancelled. Reserved keys go back into stock.")

    @action(description="Deliver by hand", url_path="deliver", permissions=["manage"])
    def deliver_action(self, request, object_id):
        order = self._order(object_id)
        lines = selectors.order_lines_awaiting_staff(order)
        form = DeliverForm(_posted(request), lines=lines)
        if request.method == "POST" and form.is_valid():
            line = next(line for line in lines if line.pk == form.cleaned_data["line"])
            try:
                services.line_mark_delivered(line=line, note=form.cleaned_data["note"], actor=request.user)
            except services.OrderError as exc:
                _service_error(form, exc)
            else:
                messages.success(request, f"“{line.title}” delivered.")
                return HttpResponseRedirect(_change_url(order))
        return _render_action(self, request, order, title=f"Deliver order {order.number}", form=form,
                              submit="Deliver", summary=_order_summary(order),
                              intro="Manual and top-up lines are delivered by staff.")


def _order_summary(order: Order) -> list[tuple[str, str]]:
    return [("Order", order.number), ("Status", order.get_status_display()), ("Contact", order.contact),
            ("Total", format_minor(order.total, order.currency)),
            ("Refunded", format_minor(order.refunded_amount, order.currency))]


# --- tickets -------------------------------------------------------------------------

@admin.register(Ticket, site=shop_console)
class TicketAdmin(ShopRoleAccess, ModelAdmin):
    list_display = ("id", "order_number", "reason", "status", "created_at", "message_count")
    list_filter = ("status", "reason")
    search_fields = ("order__number", "order__contact")
    fields = ("order_link", "contact", "reason", "status", "created_at", "closed_at", "order_keys")
    readonly_fields = fields
    change_form_outer_after_template = "orders/console/ticket_thread.html"
    actions_detail = ["reply_action", "reissue_action", "refund_action", "close_action"]

    def get_queryset(self, request):
        return selectors.ticket_list()

    def get_ordering(self, request):
        return ["status_rank", "-id"]  # open tickets first

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # tickets change only through the actions below

    @admin.display(description="Order", ordering="order__number")
    def order_number(self, ticket):
        return ticket.order.number

    @admin.display(description="Messages")
    def message_count(self, ticket):
        return ticket.message_count

    @admin.display(description="Order")
    def order_link(self, ticket):
        return format_html('<a class="text-primary-600" href="{}">{}</a>', _change_url(ticket.order),
                           ticket.order.number)

    @admin.display(description="Buyer")
    def contact(self, ticket):
        return ticket.order.contact

    @admin.display(description="Keys of the order (masked)")
    def order_keys(self, ticket):
        return OrderAdmin.delivered_keys(self, ticket.order)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        ticket = selectors.ticket_get(ticket_id=object_id) if str(object_id).isdigit() else None
        extra = {"thread": list(ticket.messages.all()) if ticket else [], "can_manage": can_manage(request),
                 "title": f"Ticket #{ticket.pk} · order {ticket.order.number}" if ticket else None,
                 "ticket_open": ticket is not None and ticket.status != Ticket.Status.CLOSED,
                 "reply_form": ReplyForm()}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def get_actions_detail(self, request, object_id):
        actions = super().get_actions_detail(request, object_id)
        ticket = Ticket.objects.select_related("order").filter(pk=object_id).first()
        if ticket is None:
            return actions
        wanted = set()
        if ticket.status != Ticket.Status.CLOSED:
            wanted |= {"reply_action", "close_action"}
            if selectors.order_keys_masked(ticket.order):
                wanted.add("reissue_action")
        if selectors.order_refundable_amount(ticket.order) > 0:
            wanted.add("refund_action")
        return _only(self, actions, wanted)

    def _ticket(self, object_id) -> Ticket:
        ticket = Ticket.objects.select_related("order").filter(pk=object_id).first()
        if ticket is None:
            raise Http404("No such ticket in this shop.")
        return ticket

    @action(description="Reply", url_path="reply", permissions=["manage"])
    def reply_action(self, request, object_id):
        ticket = self._ticket(object_id)
        form = ReplyForm(_posted(request))
        if request.method == "POST" and form.is_valid():
            try:
                services.ticket_reply(ticket=ticket, body=form.cleaned_data["body"], actor=request.user,
                                      from_staff=True)
            except services.OrderError as exc:
                _service_error(form, exc)
            else:
                messages.success(request, "Reply sent.")
                return HttpResponseRedirect(_change_url(ticket))
        return _render_action(self, request, ticket, title=f"Reply to ticket #{ticket.pk}", form=form,
                              submit="Send reply", summary=_ticket_summary(ticket))

    @action(description="Reissue key", url_path="reissue", permissions=["manage"])
    def reissue_action(self, request, object_id):
        ticket = self._ticket(object_id)
        form = ReissueForm(_posted(request), keys=selectors.order_keys_masked(ticket.order))
        if ticket.status == Ticket.Status.CLOSED:  # the service does not check this itself
            messages.error(request, "This ticket is closed.")
            return HttpResponseRedirect(_change_url(ticket))
        if request.method == "POST" and form.is_valid():
            try:
                services.ticket_reissue_key(ticket=ticket, delivered_key_id=form.cleaned_data["delivered_key"],
                                            actor=request.user)
            except services.OrderError as exc:
                _service_error(form, exc, field_map={"key": "delivered_key"})
            else:
                messages.success(request, "A new key was delivered; the old one is void.")
                return HttpResponseRedirect(_change_url(ticket))
        return _render_action(self, request, ticket, title=f"Reissue a key for order {ticket.order.number}",
                              form=form, submit="Void it and deliver a new key", summary=_ticket_summary(ticket),
                              intro="The chosen key is voided and a fresh one from stock takes its place.")

    @action(description="Refund", url_path="refund", permissions=["manage"])
    def refund_action(self, request, object_id):
        ticket = self._ticket(object_id)
        order = ticket.order
        form = RefundForm(_posted(request), order=order)
        if request.method == "POST" and form.is_valid():
            try:
                services.order_refund(order=order, amount=form.cleaned_data["amount"],
                                      reason=form.cleaned_data["reason"], actor=request.user, ticket=ticket)
            except (services.OrderError, PaymentError, UnknownPlugin) as exc:
                _service_error(form, exc)
            else:
                messages.success(request, f"Refunded {format_minor(form.cleaned_data['amount'], order.currency)}.")
                return HttpResponseRedirect(_change_url(ticket))
        return _render_action(self, request, ticket, title=f"Refund order {order.number}", form=form,
                              submit="Refund", danger=True, summary=_ticket_summary(ticket),
                              intro="The money goes back through the payment method the buyer used; "
                                    "the ticket records the refund.")

    @action(description="Close", url_path="close", permissions=["manage"])
    def close_action(self, request, object_id):
        ticket = self._ticket(object_id)
        if request.method == "POST":
            services.ticket_close(ticket=ticket, actor=request.user)
            audit_record(action="ticket.closed", actor=request.user, target=ticket, request=request,
                         data={"order": ticket.order.number})
            messages.success(request, f"Ticket #{ticket.pk} closed.")
            return HttpResponseRedirect(_change_url(ticket))
        return _render_action(self, request, ticket, title=f"Close ticket #{ticket.pk}", form=ConfirmForm(),
                              submit="Close the ticket", summary=_ticket_summary(ticket))


def _ticket_summary(ticket: Ticket) -> list[tuple[str, str]]:
    order = ticket.order
    return [("Ticket", f"#{ticket.pk} · {ticket.get_reason_display()} · {ticket.get_status_display()}"),
            ("Order", f"{order.number} · {order.get_status_display()}"), ("Buyer", order.contact),
            ("Total", format_minor(order.total, order.currency)),
            ("Refunded", format_minor(order.refunded_amount, order.currency))]


# --- checkout rules (one row per shop) -----------------------------------------------

class OrderSettingsForm(forms.ModelForm):
    class Meta:
        model = OrderSettings
        fields = ["reservation_minutes", "max_open_orders_per_contact", "max_open_orders_per_ip",
                  "awaiting_stock_refund_hours"]
        help_texts = {
            "reservation_minutes": "How long keys stay reserved for an unpaid order (1–1440).",
            "max_open_orders_per_contact": "Unpaid orders one e-mail or phone may hold at once (1–100).",
            "max_open_orders_per_ip": "Unpaid orders one network address may hold at once (1–1000).",
            "awaiting_stock_refund_hours": "Paid orders still waiting for stock after this long are refunded "
                                           "automatically (1–720).",
        }

    BOUNDS = {"reservation_minutes": (1, 1440), "max_open_orders_per_contact": (1, 100),
              "max_open_orders_per_ip": (1, 1000), "awaiting_stock_refund_hours": (1, 720)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, (low, high) in self.BOUNDS.items():
            if name not in self.fields:  # the read-only page of staff members
                continue
            self.fields[name].validators += [MinValueValidator(low), MaxValueValidator(high)]
            self.fields[name].widget.attrs.update(min=low, max=high)


@admin.register(OrderSettings, site=shop_console)
class OrderSettingsAdmin(ShopRoleAccess, ModelAdmin):
    form = OrderSettingsForm

    def has_add_permission(self, request, *args):
        return False  # the one row is created on the first visit

    def changelist_view(self, request, extra_context=None):
        """One row per shop: the list is just the way to its form. The row is made with
        the defaults ``OrderSettings.current()`` uses anyway, so nothing changes by it."""
        current = OrderSettings.objects.order_by("id").first() or OrderSettings.objects.create()
        return HttpResponseRedirect(_change_url(current))

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            obj.save()
            audit_record(action="orders.settings_changed", actor=request.user, target=obj, request=request,
                         data={name: form.cleaned_data[name] for name in form.changed_data})
