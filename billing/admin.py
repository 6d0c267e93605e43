"""Platform console (``/console/``): plans (editable), subscriptions, invoices and saved
cards (read-only)."""
from django import forms
from django.contrib import admin
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline

from billing import invoicing, services
from billing.models import BillingCustomer, Invoice, InvoiceLine, Plan, Subscription, SubscriptionEvent
from platform_core.admin_sites import platform_console
from platform_core.money import format_minor
from tenants.admin import StaffOnly


class PlanForm(forms.ModelForm):
    class Meta:
        model = Plan
        fields = "__all__"

    def clean_features(self):
        features = self.cleaned_data.get("features")
        if not isinstance(features, list) or not all(
                isinstance(f, str) and f.startswith(("plugins.", "plugin.")) for f in features):
            raise forms.ValidationError('A list such as ["plugins.payment", "plugin.sandbox"].')
        return features


@admin.register(Plan, site=platform_console)
class PlanAdmin(StaffOnly, ModelAdmin):
    form = PlanForm
    list_display = ("code", "name", "fee", "commission_bp", "max_products", "max_staff_seats", "max_custom_domains",
                    "max_monthly_orders", "is_active")
    fields = ("code", "name", "monthly_fee", "currency", "commission_bp", "max_products", "max_staff_seats",
              "max_custom_domains", "max_monthly_orders", "features", "trial_days", "sort_order", "is_active")

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def get_readonly_fields(self, request, obj=None):
        return ("code", "currency") if obj else ()  # shops and invoices refer to them

    @admin.display(description="monthly fee")
    def fee(self, plan):
        return format_minor(plan.monthly_fee, plan.currency)

    def save_model(self, request, obj, form, change):
        services.plan_save(plan=obj, actor=request.user, request=request)


class ReadOnlyInline(StaffOnly):
    def has_add_permission(self, request, obj=None):  # inlines get the parent object too
        return False


class EventInline(ReadOnlyInline, TabularInline):
    model = SubscriptionEvent
    fields = ("created_at", "kind", "from_status", "to_status", "data", "actor_email")
    readonly_fields = fields
    extra = 0


@admin.register(Subscription, site=platform_console)
class SubscriptionAdmin(StaffOnly, ModelAdmin):
    list_display = ("shop", "plan", "status", "trial_ends_at", "cancel_at_period_end", "past_due_since")
    list_filter = ("status", "plan")
    search_fields = ("shop__slug", "shop__name")
    readonly_fields = ("shop", "plan", "status", "trial_ends_at", "cancel_at_period_end", "past_due_since",
                       "cancelled_at", "created_at", "updated_at")
    fields = readonly_fields
    inlines = [EventInline]


@admin.register(BillingCustomer, site=platform_console)
class BillingCustomerAdmin(StaffOnly, ModelAdmin):
    """Which shops the platform's provider can charge without the owner (ids only)."""

    list_display = ("shop", "provider", "customer_id", "card_brand", "card_last4", "card_saved_at")
    list_filter = ("provider",)
    search_fields = ("shop__slug", "shop__name", "customer_id")
    readonly_fields = ("shop", "provider", "customer_id", "payment_method_id", "card_brand", "card_last4",
                       "card_saved_at", "created_at")
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CreditForm(forms.Form):
    amount = forms.CharField(required=False, max_length=20, help_text="e.g. 20.00; blank credits all that is left.")
    reason = forms.CharField(max_length=200, help_text="Printed on the credit note and kept in the audit log.")


class LineInline(ReadOnlyInline, TabularInline):
    model = InvoiceLine
    fields = ("position", "kind", "description", "quantity", "amount")
    readonly_fields = fields
    extra = 0


@admin.register(Invoice, site=platform_console)
class InvoiceAdmin(StaffOnly, ModelAdmin):
    list_display = ("number", "shop", "kind", "total_display", "status", "issued_at", "period_start")
    list_filter = ("status", "kind", "year")
    search_fields = ("number", "shop__slug")
    readonly_fields = ("number", "shop", "kind", "period_start", "period_end", "currency", "subtotal", "tax_bp",
                       "tax", "total", "credits", "bill_to", "issued_at", "due_at", "status", "paid_at",
                       "attempt_count", "next_attempt_at", "last_attempt_at", "pdf", "credit_link")
    fields = readonly_fields
    inlines = [LineInline]

    def get_urls(self):
        from django.urls import path

        return [path("<int:invoice_id>/credit/", self.admin_site.admin_view(self.credit_view),
                     name="billing_invoice_credit")] + super().get_urls()

    def credit_view(self, request, invoice_id):
        """Issue a credit note for an invoice (amount in major units; blank: all that is left)."""
        from django.contrib import messages
        from django.shortcuts import get_object_or_404, redirect
        from django.template.response import TemplateResponse

        from platform_core.money import parse_major

        if not self.has_module_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        invoice = get_object_or_404(Invoice, pk=invoice_id, kind=Invoice.Kind.INVOICE)
        form = CreditForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            raw = form.cleaned_data["amount"].strip()
            try:
                amount = parse_major(raw, invoice.currency) if raw else None
                note = invoicing.credit_note_issue(invoice=invoice, amount=amount, reason=form.cleaned_data["reason"],
                                                   actor=request.user, request=request)
            except ValueError as exc:
                form.add_error("amount", str(exc))
            except services.BillingError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Credit note {note.number} issued.")
                return redirect("console:billing_invoice_change", invoice.pk)
        context = {**self.admin_site.each_context(request), "title": f"Credit note for {invoice.number}",
                   "form": form, "opts": self.model._meta}
        return TemplateResponse(request, "kameng/manage/form_page.html", context)

    @admin.display(description="credit")
    def credit_link(self, invoice):
        if invoice.kind != Invoice.Kind.INVOICE:
            return "—"
        from django.urls import reverse

        return format_html('<a class="underline" href="{}">Issue a credit note</a>',
                           reverse("console:billing_invoice_credit", args=[invoice.pk]))

    @admin.display(description="total")
    def total_display(self, invoice):
        return format_minor(invoice.total, invoice.currency)

    @admin.display(description="PDF")
    def pdf(self, invoice):
        return format_html('<a class="underline" href="{}">Download (link valid a few minutes)</a>',
                           invoicing.invoice_download_url(invoice=invoice, host_prefix="/console"))
