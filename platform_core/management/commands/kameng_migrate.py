from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Migrate public and every shop schema (skipping current ones), then keep the template and pool ready."

    def add_arguments(self, parser):
        parser.add_argument("--no-pool", action="store_true", help="do not top up the pool of spare schemas")

    def handle(self, *args, **opts):
        from tenants.services import spare_pool_refill, template_ensure

        verbosity = opts["verbosity"]
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        template_ensure(verbosity=verbosity)
        call_command("migrate_schemas", tenant=True, interactive=False, verbosity=verbosity)
        if not opts["no_pool"]:
            made = spare_pool_refill()
            if made and verbosity:
                self.stdout.write(f"Prepared {made} spare shop schema(s) for instant signup.")
