"""Shop-console pages for card-key stock (under /manage/stock/). Members can look;
the owner and admins import, reveal, void and export. Views stay thin: they call
:mod:`platform_core.inventory.services` and render."""
from __future__ import annotations

import csv
import uuid
from pathlib import PurePath

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db import connection, transaction
from django.http import HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from platform_core.admin_sites import can_manage, shop_console
from platform_core.catalog.models import SKU, Product
from platform_core.inventory import services
from platform_core.inventory.models import CardKey, ImportBatch
from platform_core.inventory.parsers import FORMATS, guess_format, parse_separator
from platform_core.inventory.stock import KeyCipher, mask
from platform_core.inventory.tasks import import_keys_task

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
KEYS_PER_PAGE = 50
SHOWN_ERRORS = 200


def inventory_console_urls(admin_view) -> list:
    """URL patterns for ShopConsole.get_urls (names live in the ``manage`` namespace)."""
    return [
        path("stock/", admin_view(stock_view), name="stock"),
        path("stock/sku/<int:sku_id>/", admin_view(keys_view), name="stock_keys"),
        path("stock/sku/<int:sku_id>/import/", admin_view(import_view), name="stock_import"),
        path("stock/sku/<int:sku_id>/void/", admin_view(void_view), name="stock_void"),
        path("stock/sku/<int:sku_id>/export/", admin_view(export_view), name="stock_export"),
        path("stock/keys/<int:key_id>/reveal/", admin_view(reveal_view), name="stock_reveal"),
        path("stock/batches/<int:batch_id>/", admin_view(batch_view), name="stock_batch"),
        path("stock/batches/<int:batch_id>/progress.json", admin_view(batch_progress_view),
             name="stock_batch_progress"),
    ]


def _render(request, template, title, **context):
    return TemplateResponse(request, template, {**shop_console.each_context(request), "title": title,
                                                "can_manage": can_manage(request), **context})


def _require_manage(request):
    if not can_manage(request):
        raise PermissionDenied("Only the shop's owner and admins can change stock.")


def _card_key_sku(sku_id) -> SKU:
    return get_object_or_404(SKU.objects.select_related("product"), pk=sku_id, product__type=Product.Type.CARD_KEY)


# --- overview ------------------------------------------------------------------------

def stock_view(request):
    """Every card-key SKU with its counters (kept on the SKU row: no counting here)."""
    products = (Product.objects.filter(type=Product.Type.CARD_KEY).prefetch_related("skus")
                .order_by("sort_order", "id"))
    batches = ImportBatch.objects.select_related("sku__product")[:10]
    return _render(request, "inventory/manage/stock.html", "Stock", products=products, batches=batches)


# --- import --------------------------------------------------------------------------

class KeyImportForm(forms.Form):
    LAYOUTS = [("", "One key per line"), ("space", "card password (space)"), ("comma", "card,password"),
               ("dashes", "card----password"), ("pipe", "card|password"), ("tab", "card<tab>password")]

    keys = forms.CharField(label="Paste keys", required=False, widget=forms.Textarea(attrs={"rows": 8}),
                           help_text="One per line. For more than a few thousand keys, upload a file.")
    file = forms.FileField(label="…or upload a file", required=False,
                           help_text="TXT (UTF-8 or GB18030), CSV (column A card, B password) or XLSX (first sheet).")
    format = forms.ChoiceField(choices=[("", "From the file name")] + [(f, f.upper()) for f in FORMATS],
                               required=False)
    layout = forms.ChoiceField(choices=LAYOUTS, required=False, label="Card and password",
                               help_text="Pairs are stored as “card password”. For CSV / XLSX, choosing a "
                                         "pair layout makes column B required.")
    loop = forms.BooleanField(required=False, label="Loop key: sold to every buyer, never used up",
                              help_text="For a shared download code or licence; usually one per SKU.")

    def clean(self):
        cleaned = super().clean()
        pasted, upload = (cleaned.get("keys") or "").strip(), cleaned.get("file")
        if bool(pasted) == bool(upload):
            raise forms.ValidationError("Paste keys or choose a file (one of the two).")
        if upload is not None and upload.size > MAX_UPLOAD_BYTES:
            self.add_error("file", f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; split it.")
        return cleaned


def import_view(request, sku_id):
    sku = _card_key_sku(sku_id)
    form = KeyImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        _require_manage(request)
        if form.is_valid():
            batch = _start_import(request, sku, form.cleaned_data)
            return HttpResponseRedirect(reverse("manage:stock_batch", args=[batch.pk]))
    return _render(request, "inventory/manage/import.html", f"Import keys: {sku}", sku=sku, form=form)


def _start_import(request, sku: SKU, data: dict) -> ImportBatch:
    """Store the upload (or the pasted text) and hand it to the Celery task."""
    upload = data.get("file")
    if upload is not None:
        filename = PurePath(upload.name).name[:200]
        fmt = data.get("format") or guess_format(filename, upload.read(8))
        upload.seek(0)
        source, content = fmt, upload
    else:
        filename, fmt, source = "", "txt", "paste"
        content = ContentFile(data["keys"].encode("utf-8"))
    # random name, deleted by the task: the file holds plaintext keys
    path = default_storage.save(f"imports/{connection.schema_name}/{uuid.uuid4().hex}.{fmt}", content)
    batch = ImportBatch.objects.create(sku=sku, source=source, filename=filename,
                                       created_by_email=request.user.email)
    options = {"shop_id": request.tenant.pk, "source": source, "fmt": fmt, "filename": filename,
               "separator": parse_separator(data.get("layout") or None), "loop": bool(data.get("loop"))}
    transaction.on_commit(lambda: import_keys_task.delay(batch.pk, path, options))
    return batch


def batch_view(request, batch_id):
    batch = get_object_or_404(ImportBatch.objects.select_related("sku__product"), pk=batch_id)
    return _render(request, "inventory/manage/batch.html", f"Import #{batch.pk}", batch=batch,
                   progress=_progress(batch))


def batch_progress_view(request, batch_id):
    batch = get_object_or_404(ImportBatch, pk=batch_id)
    return JsonResponse(_progress(batch))


def _progress(batch: ImportBatch) -> dict:
    return {
        "id": batch.pk, "status": batch.status, "finished": batch.status in (ImportBatch.Status.DONE,
                                                                            ImportBatch.Status.FAILED),
        "percent": batch.percent, "total_lines": batch.total_lines, "processed_lines": batch.processed_lines,
        "imported": batch.imported, "duplicates": batch.duplicates, "invalid": batch.invalid,
        "errors": sorted(batch.errors, key=lambda error: error["line"])[:SHOWN_ERRORS], "message": batch.message,
    }


# --- keys of one SKU -----------------------------------------------------------------

def keys_view(request, sku_id):
    sku = _card_key_sku(sku_id)
    status = request.GET.get("status", CardKey.Status.AVAILABLE)
    if status not in CardKey.Status.values:
        status = CardKey.Status.AVAILABLE
    keys = CardKey.objects.filter(sku=sku, status=status).order_by("created_at", "id").only(
        "id", "secret", "status", "is_loop", "created_at", "sold_at", "batch_id")
    page = Paginator(keys, KEYS_PER_PAGE).get_page(request.GET.get("page"))
    cipher = KeyCipher(request.tenant)
    rows = [{"key": key, "masked": mask(cipher.decrypt(key.secret))} for key in page.object_list]
    return _render(request, "inventory/manage/keys.html", f"Keys: {sku}", sku=sku, page=page, rows=rows,
                   status=status, statuses=CardKey.Status.choices)


@require_POST
def reveal_view(request, key_id):
    _require_manage(request)
    key = get_object_or_404(CardKey, pk=key_id)
    secret = services.key_reveal(shop=request.tenant, key=key, actor=request.user, request=request)
    # admin_view adds never_cache (Cache-Control: no-store) to both answers
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"id": key.pk, "secret": secret})
    return _render(request, "inventory/manage/revealed.html", f"Key #{key.pk}", key=key, secret=secret)


@require_POST
def void_view(request, sku_id):
    _require_manage(request)
    sku = _card_key_sku(sku_id)
    ids = [int(pk) for pk in request.POST.getlist("key") if pk.isdigit()]
    count = services.keys_void(shop=request.tenant, key_ids=CardKey.objects.filter(sku=sku, pk__in=ids)
                               .values_list("pk", flat=True), actor=request.user, request=request)
    messages.success(request, f"{count} key(s) voided.")
    return HttpResponseRedirect(reverse("manage:stock_keys", args=[sku.pk]))


class _Echo:
    def write(self, value):
        return value


@require_POST
def export_view(request, sku_id):
    _require_manage(request)
    sku = _card_key_sku(sku_id)
    secrets = services.keys_export_unsold(shop=request.tenant, sku=sku, actor=request.user, request=request)
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(["key"])  # the header the importer skips: the file re-imports as is
        for secret in secrets:
            yield writer.writerow([secret])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="unsold-keys-sku{sku.pk}.csv"'
    response["Cache-Control"] = "no-store"
    return response

