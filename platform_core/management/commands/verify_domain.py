from django.core.management.base import BaseCommand, CommandError

from tenants import services
from tenants.models import Domain


class Command(BaseCommand):
    help = "Check the DNS TXT token of a custom domain; it routes only once verified."

    def add_arguments(self, parser):
        parser.add_argument("domain", nargs="?", help="host name; omit with --all")
        parser.add_argument("--all", action="store_true", help="check every unverified custom domain")

    def handle(self, *args, **opts):
        domains = Domain.objects.filter(verified_at__isnull=True, is_platform_subdomain=False)
        if not opts["all"]:
            if not opts["domain"]:
                raise CommandError("Name a domain or pass --all.")
            domains = Domain.objects.filter(domain=opts["domain"].lower())
            if not domains:
                raise CommandError(f"No shop has the domain {opts['domain']}.")
        for domain in domains:
            if services.domain_verify(domain=domain):
                self.stdout.write(self.style.SUCCESS(f"{domain.domain}: verified"))
            else:
                self.stdout.write(self.style.WARNING(
                    f"{domain.domain}: not verified — {domain.last_check_error}\n"
                    f"  create: TXT {domain.txt_record_name} \"{domain.txt_record_value}\""))
