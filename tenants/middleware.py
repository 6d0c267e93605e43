"""Host routing: the platform host serves the platform, every verified shop domain
its shop, anything else a clean 404."""
from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponseNotFound, JsonResponse
from django.db import connection
from django.template.loader import render_to_string
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import get_public_schema_name

from platform_core.cache import prefetch_for_shop, prefetch_route

ROUTE_CACHE_SECONDS = 60
SESSION_HOST_KEY = "_kameng_host"


def route_cache_key(hostname: str) -> str:
    return f"route:{hostname}"


def request_hostname(request) -> str:
    return request.get_host().rsplit(":", 1)[0].lower().rstrip(".")


def platform_hosts() -> tuple[str, str]:
    domain = settings.PLATFORM_DOMAIN
    return domain, f"www.{domain}"


class PublicTenant:
    """Stands for the platform itself on the public schema."""

    schema_name = get_public_schema_name()
    slug = None
    pk = None
    is_platform = True


class ShopRoutingMiddleware(TenantMainMiddleware):
    def get_tenant(self, domain_model, hostname, made_key=None):
        key = route_cache_key(hostname)
        shop = cache.get(key) if made_key is None else cache.get_made(made_key)
        if shop is None:
            connection.set_schema_to_public()  # the domains, and the route's key, are the platform's
            domain = (domain_model.objects.select_related("tenant")
                      .filter(domain=hostname, verified_at__isnull=False).first())
            shop = domain.tenant if domain else False
            if shop:  # resolved once here, so building shop URLs costs no query per request
                shop.__dict__["primary_domain"] = domain.domain if domain.is_primary else shop.primary_domain
            cache.set(key, shop, ROUTE_CACHE_SECONDS)
        if not shop or shop.status in ("template", "spare"):
            raise domain_model.DoesNotExist
        return shop

    def process_request(self, request):
        try:
            return self._route(request)
        except BaseException:  # a refused host, a cache that is down: answered as the
            connection.set_schema_to_public()  # platform, never as the last request's shop
            raise

    def _route(self, request):
        hostname = request_hostname(request)
        if hostname in platform_hosts():
            connection.set_schema_to_public()
            return self._serve_platform(request)
        from tenants.models import Domain

        # a shop's request switches schema once, to its shop: the route is read by its
        # key made in public once per process, the domains only when it is not cached
        made_key = prefetch_route(hostname, route_cache_key(hostname))  # with the shop's keys its last request read
        if made_key is None:  # no request scope: the key is made now, in public
            connection.set_schema_to_public()
        try:
            shop = self.get_tenant(Domain, hostname, made_key)
        except Domain.DoesNotExist:
            connection.set_schema_to_public()
            if request.path == "/healthz":  # load balancers probe by IP
                return self._serve_platform(request)
            return self.no_tenant_found(request, hostname)
        shop.domain_url = hostname
        request.tenant = shop
        connection.set_tenant(shop)
        prefetch_for_shop(shop, hostname)
        request.urlconf = settings.ROOT_URLCONF

    def _serve_platform(self, request):
        request.tenant = PublicTenant()
        request.urlconf = settings.PUBLIC_SCHEMA_URLCONF

    def no_tenant_found(self, request, hostname):
        html = render_to_string("kameng/unknown_host.html", {"hostname": hostname,
                                                            "platform_domain": settings.PLATFORM_DOMAIN})
        return HttpResponseNotFound(html)


class HostBoundSessionMiddleware:
    """A session belongs to the host it was created on; replayed elsewhere it is dropped."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        host = request_hostname(request)
        bound = request.session.get(SESSION_HOST_KEY)
        if bound is not None and bound != host:
            request.session.flush()
        response = self.get_response(request)
        if getattr(request, "session", None) is not None and not request.session.is_empty() \
                and request.session.get(SESSION_HOST_KEY) is None and request.session.session_key:
            request.session[SESSION_HOST_KEY] = host
            request.session.save()
        return response


class ShopStatusMiddleware:
    """Suspended or closed shops: a clear page on the storefront, 403 JSON on the API.
    The shop's own console stays reachable for its members."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        shop = getattr(request, "tenant", None)
        status = getattr(shop, "status", None)
        if status in ("suspended", "closed") and not self._exempt(request.path):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": "This shop is unavailable.", "code": "shop_unavailable",
                                     "status": status}, status=403)
            html = render_to_string("kameng/shop_unavailable.html", {"shop": shop}, request=request)
            from django.http import HttpResponseForbidden

            return HttpResponseForbidden(html)
        return self.get_response(request)

    @staticmethod
    def _exempt(path: str) -> bool:
        # gateways must still reach a suspended shop: buyers may already have paid
        # and the owner must be able to pay the platform to get the shop back (console and billing API)
        return path == "/healthz" or path.startswith(("/manage/", "/static/", "/hooks/", "/api/v1/billing/"))
