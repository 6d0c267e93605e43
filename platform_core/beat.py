"""Tenant-aware beat scheduler that knows about our shop lifecycle.

Entries without ``tenant_schemas`` go to every *live* shop (never to the template
or spare schemas, nor to suspended or closed shops); entries for ``public`` are
sent once from the public schema.
"""
from django_tenants.utils import get_public_schema_name, schema_context
from tenant_schemas_celery.scheduler import TenantAwarePersistentScheduler


class ShopAwareScheduler(TenantAwarePersistentScheduler):
    @classmethod
    def get_queryset(cls):
        from tenants.models import Shop

        return Shop.objects.live()

    def apply_entry(self, entry, producer=None):
        headers = entry.options.setdefault("headers", {})
        if headers.get("_schema_name") == get_public_schema_name():
            with schema_context(get_public_schema_name()):
                self.apply_async(entry, producer=producer, advance=False)
            return
        super().apply_entry(entry, producer=producer)
