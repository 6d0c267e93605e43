"""Tenant-aware beat scheduler that knows about our shop lifecycle.

Entries without ``tenant_schemas`` go to every *live* shop (never to the template
or spare schemas, nor to suspended or closed shops), except the jobs in
``FOR_EVERY_SHOP``, which suspended and closed shops need too; entries for ``public``
are sent once from the public schema.
"""
from django_tenants.utils import get_public_schema_name, schema_context
from tenant_schemas_celery.scheduler import TenantAwarePersistentScheduler

#: a suspended or closed shop still hears its gateways and delivers what was paid, so
#: the e-mails of those deliveries still go out
FOR_EVERY_SHOP = frozenset({"orders.send_pending_emails"})


class ShopAwareScheduler(TenantAwarePersistentScheduler):
    _every_shop = False  # set while an entry of FOR_EVERY_SHOP is sent

    def get_queryset(self):
        from tenants.models import Shop

        return Shop.objects.real() if self._every_shop else Shop.objects.live()

    def apply_entry(self, entry, producer=None):
        headers = entry.options.setdefault("headers", {})
        if headers.get("_schema_name") == get_public_schema_name():
            with schema_context(get_public_schema_name()):
                self.apply_async(entry, producer=producer, advance=False)
            return
        self._every_shop = entry.task in FOR_EVERY_SHOP
        try:
            super().apply_entry(entry, producer=producer)
        finally:
            self._every_shop = False
