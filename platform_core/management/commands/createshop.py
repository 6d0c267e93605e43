from django.core.management.base import BaseCommand, CommandError

from tenants import services


class Command(BaseCommand):
    help = "Create a live shop: kameng createshop SLUG --owner EMAIL [--name NAME] [--password PW]"

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True, help="owner's e-mail; an account is created if missing")
        parser.add_argument("--name", help="shop name (default: the slug)")
        parser.add_argument("--password", help="password for a new owner account (default: generated)")
        parser.add_argument("--language", default="zh-hans", choices=["en", "zh-hans"])
        parser.add_argument("--currency", default="CNY")
        parser.add_argument("--no-sample", action="store_true", help="start without sample content")

    def handle(self, *args, **opts):
        import secrets

        from tenants.models import Merchant

        password = opts["password"]
        new_owner = not Merchant.objects.filter(email__iexact=opts["owner"]).exists()
        if new_owner and not password:
            password = secrets.token_urlsafe(12)
        try:
            created = services.shop_create(
                slug=opts["slug"], name=opts["name"] or opts["slug"], owner_email=opts["owner"],
                owner_password=password if new_owner else None, language=opts["language"],
                currency=opts["currency"].upper(), sample_catalog=not opts["no_sample"],
            )
        except services.ShopCreationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self.style.SUCCESS(f"Shop {created.shop.slug} is live: {services.shop_url(created.shop)}"))
        self.stdout.write(f"Console: {created.url}")
        if created.owner_created:
            self.stdout.write(f"Owner {created.owner.email} created with password: {password}")
        else:
            self.stdout.write(f"Owner: {created.owner.email} (existing account)")
