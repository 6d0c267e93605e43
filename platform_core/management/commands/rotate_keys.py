from django.core.management.base import BaseCommand

from platform_core import crypto


class Command(BaseCommand):
    help = ("Re-wrap every shop data key under the current KAMENG_MASTER_KEY "
            "(list the previous key in KAMENG_OLD_MASTER_KEYS while this runs).")

    def handle(self, *args, **opts):
        count = crypto.rotate_master_key()
        self.stdout.write(self.style.SUCCESS(f"Re-wrapped {count} data key(s) under master key "
                                             f"{crypto.current_master_key()[0]}."))
