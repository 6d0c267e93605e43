"""Platform-host pages (landing, signup, merchant account) and /healthz."""
from __future__ import annotations

import time

from django import forms
from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required

from django.db import connection
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from platform_core.ratelimit import rate_limited
from tenants import services
from tenants.handoff import handoff_token
from tenants.models import Shop, ShopMembership


def landing(request):
    return render(request, "kameng/platform/landing.html", {"platform_domain": settings.PLATFORM_DOMAIN})


class SignupForm(forms.Form):
    email = forms.EmailField(label="E-mail")
    password = forms.CharField(label="Password", widget=forms.PasswordInput, min_length=10,
                               help_text="At least 10 characters.")
    shop_name = forms.CharField(label="Shop name", max_length=80)
    slug = forms.CharField(label="Shop address", max_length=30,
                           help_text="Lowercase letters, digits and hyphens; your shop will live at "
                                     "<address>." + settings.PLATFORM_DOMAIN)
    language = forms.ChoiceField(label="Storefront language", choices=Shop.Language.choices,
                                 initial=Shop.Language.ZH_HANS)


@never_cache
def signup(request):
    """An entrepreneur signs up and lands in the console of a live shop."""
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        if rate_limited(request, "signup", limit=20, window_seconds=3600):
            form.add_error(None, "Too many sign-ups from your network; try again in an hour.")
        elif form.is_valid():
            data = form.cleaned_data
            try:
                created = services.shop_create(
                    slug=data["slug"], name=data["shop_name"], owner_email=data["email"],
                    owner_password=data["password"], language=data["language"], request=request,
                )
            except services.ShopCreationError as exc:
                form.add_error({"email": "email", "password": "password", "slug": "slug",
                                "name": "shop_name"}.get(exc.field) or None, exc.message)
            else:
                login(request, created.owner, backend="django.contrib.auth.backends.ModelBackend")
                token = handoff_token(merchant=created.owner, shop=created.shop)
                return HttpResponseRedirect(services.shop_url(created.shop, f"/manage/handoff/?token={token}"))
    return render(request, "kameng/platform/signup.html", {"form": form, "platform_domain": settings.PLATFORM_DOMAIN})


@login_required
def account(request):
    memberships = (ShopMembership.objects.select_related("shop").filter(merchant=request.user)
                   .exclude(shop__slug=None).order_by("shop__name"))
    return render(request, "kameng/platform/account.html", {"memberships": memberships})


@login_required
def open_shop_console(request, slug):
    shop = Shop.objects.real().filter(slug=slug).first()
    if shop is None or services.membership_for(request.user, shop) is None:
        raise Http404("No such shop among yours.")
    token = handoff_token(merchant=request.user, shop=shop)
    return HttpResponseRedirect(services.shop_url(shop, f"/manage/handoff/?token={token}"))


@require_GET
@never_cache
def healthz(request):
    """Database, Redis and worker heartbeat; 200 when all are up, 503 otherwise."""
    checks: dict[str, dict] = {}
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001 - any failure is "down" here
        checks["database"] = {"ok": False, "error": exc.__class__.__name__}
    try:
        from platform_core.tasks import HEARTBEAT_KEY, redis_client

        client = redis_client()
        client.ping()
        checks["redis"] = {"ok": True}
        beat = client.get(HEARTBEAT_KEY)
        age = time.time() - float(beat) if beat else None
        limit = settings.KAMENG_WORKER_HEARTBEAT_SECONDS * 4
        checks["worker"] = {"ok": age is not None and age < limit,
                            "last_heartbeat_seconds_ago": round(age, 1) if age is not None else None}
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = {"ok": False, "error": exc.__class__.__name__}
        checks["worker"] = {"ok": False, "error": "redis unreachable"}
    healthy = all(check["ok"] for check in checks.values())
    body = {"status": "ok" if healthy else "degraded", "checks": checks,
            "schema": connection.schema_name, "took_ms": round((time.perf_counter() - started) * 1000, 1)}
    return JsonResponse(body, status=200 if healthy else 503)



