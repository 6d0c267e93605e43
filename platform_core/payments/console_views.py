"""Shop-console pages for reconciliation (对账), under /manage/reconciliation/. Owner,
admins and finance staff see and settle them; the views call
:mod:`platform_core.payments.reconciliation` and render."""
from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from platform_core.admin_sites import can_see_books, shop_console
from platform_core.payments import reconciliation as recon

def reconciliation_console_urls(admin_view) -> list:
    return [
        path("reconciliation/", admin_view(reconciliation_view), name="reconciliation"),
        path("reconciliation/findings/<int:item_id>/fix/", admin_view(fix_view), name="reconciliation_fix"),
        path("reconciliation/findings/<int:item_id>/dismiss/", admin_view(dismiss_view),
             name="reconciliation_dismiss"),
    ]


class RunForm(forms.Form):
    provider = forms.ChoiceField(label="Payment method")
    day = forms.DateField(label="Day (UTC)", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, providers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [(slug, slug) for slug in providers]


def _require_money_role(request):
    if not can_see_books(request):
        raise PermissionDenied("Only the shop's owner, admins and finance staff can see the payment books.")


def reconciliation_view(request):
    _require_money_role(request)
    providers = recon.reconcilable_providers()
    form = RunForm(request.POST or None, providers=providers,
                   initial={"day": timezone.now().date() - timedelta(days=1)})
    if request.method == "POST" and form.is_valid():
        try:
            run = recon.reconcile_day(provider_slug=form.cleaned_data["provider"], day=form.cleaned_data["day"],
                                      actor=request.user, request=request)
        except recon.ReconciliationError as exc:
            form.add_error(exc.field or None, exc.message)
        else:
            level = messages.SUCCESS if run.status == run.Status.MATCHED else messages.WARNING
            messages.add_message(request, level, f"{run.provider} {run.day}: {run.matched} matched, "
                                                 f"{run.open_items} to look at." if run.status != run.Status.FAILED
                                 else f"{run.provider} {run.day}: {run.message}")
            return HttpResponseRedirect(reverse("manage:reconciliation"))
    return TemplateResponse(request, "payments/manage/reconciliation.html", {
        **shop_console.each_context(request), "title": "Reconciliation", "form": form, "providers": providers,
        "runs": recon.recent_runs(), "findings": recon.open_findings()[:200]})


@require_POST
def fix_view(request, item_id):
    _require_money_role(request)
    try:
        item = recon.reconciliation_fix(item_id=item_id, actor=request.user, request=request)
    except recon.ReconciliationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Recorded: {item.get_kind_display().lower()} ({item.external_id}).")
    return HttpResponseRedirect(reverse("manage:reconciliation"))


@require_POST
def dismiss_view(request, item_id):
    _require_money_role(request)
    try:
        item = recon.reconciliation_dismiss(item_id=item_id, note=request.POST.get("note", ""), actor=request.user,
                                            request=request)
    except recon.ReconciliationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Dismissed {item.external_id}.")
    return HttpResponseRedirect(reverse("manage:reconciliation"))
