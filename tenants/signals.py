"""Keep the host -> shop routing cache honest, and bind sessions to their host."""
from django.contrib.auth.signals import user_logged_in
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django_tenants.utils import schema_context

from tenants.middleware import SESSION_HOST_KEY, request_hostname, route_cache_key
from tenants.models import Domain, Shop


def _forget_routes(hostnames):
    # routing entries are written while on public; delete them there too
    with schema_context("public"):
        cache.delete_many([route_cache_key(h) for h in hostnames])


@receiver(post_save, sender=Shop)
@receiver(post_delete, sender=Shop)
def shop_changed(sender, instance, **kwargs):
    hostnames = list(Domain.objects.filter(tenant_id=instance.pk).values_list("domain", flat=True)) if instance.pk else []
    if hostnames:
        _forget_routes(hostnames)


@receiver(post_save, sender=Domain)
@receiver(post_delete, sender=Domain)
def domain_changed(sender, instance, **kwargs):
    # every host of the shop: cached shops carry the primary domain, which may have moved
    hostnames = set(Domain.objects.filter(tenant_id=instance.tenant_id).values_list("domain", flat=True))
    _forget_routes(hostnames | {instance.domain})


@receiver(user_logged_in)
def bind_session_to_host(sender, request, user, **kwargs):
    if request is None or not hasattr(request, "session"):
        return
    try:
        host = request_hostname(request)
    except (KeyError, ValueError):  # synthetic requests (test client's force_login) have no host
        return
    request.session[SESSION_HOST_KEY] = host
