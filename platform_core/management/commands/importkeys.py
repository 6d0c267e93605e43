import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

SHOWN_ERRORS = 20


class Command(BaseCommand):
    help = ("Import card keys from a file: kameng importkeys --shop SLUG --product ID [--sku ID] FILE "
            "[--format txt|csv|xlsx] [--separator SEP] [--pairs] [--loop]")

    def add_arguments(self, parser):
        parser.add_argument("file", help="TXT (one key per line, or card/password pairs), CSV or XLSX")
        parser.add_argument("--shop", required=True, help="the shop's slug")
        parser.add_argument("--product", required=True, type=int, help="product id")
        parser.add_argument("--sku", type=int, help="SKU id (optional when the product has one SKU)")
        parser.add_argument("--format", choices=["txt", "csv", "xlsx"],
                            help="default: from the file name, else from its first bytes")
        parser.add_argument("--separator",
                            help='TXT lines are "card<SEP>password" pairs: " ", ",", "|", --separator=---- '
                                 "or a name: space, comma, dashes, pipe, tab, semicolon. CSV / XLSX: the "
                                 "password column is then required. Pairs are stored as \"card password\".")
        parser.add_argument("--pairs", action="store_true", help="CSV / XLSX: require a password in column B")
        parser.add_argument("--loop", action="store_true", help="reusable keys, sold to every buyer")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **opts):
        from django_tenants.utils import tenant_context
        from tqdm import tqdm

        from platform_core.inventory import parsers, services
        from tenants.models import Shop

        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        shop = Shop.objects.real().filter(slug=opts["shop"]).first()
        if shop is None:
            raise CommandError(f"No shop with the slug {opts['shop']!r}.")

        with tenant_context(shop):
            sku = self._sku(opts["product"], opts["sku"])
            with path.open("rb") as stream:
                fmt = opts["format"] or parsers.guess_format(path.name, stream.read(8))
                stream.seek(0)
                bar = tqdm(unit=" lines", file=getattr(self.stderr, "_out", sys.stderr),
                           disable=opts["no_progress"], desc=f"{path.name} → {sku}")

                def progress(batch):
                    if not bar.total and batch.total_lines:
                        bar.reset(total=batch.total_lines)
                    bar.update(batch.processed_lines - bar.n)

                try:
                    batch = services.keys_import(
                        shop=shop, sku=sku, source=fmt, stream=stream, filename=path.name, fmt=fmt,
                        separator=parsers.parse_separator(opts["separator"]), pairs=opts["pairs"],
                        loop=opts["loop"], progress=progress)
                except (parsers.ImportFileError, services.StockError) as exc:
                    raise CommandError(str(exc)) from None
                finally:
                    bar.close()
        self._summary(batch)

    def _sku(self, product_id: int, sku_id: int | None):
        from platform_core.catalog.models import SKU

        skus = list(SKU.objects.select_related("product").filter(product_id=product_id).order_by("sort_order", "id"))
        if not skus:
            raise CommandError(f"Product {product_id} does not exist or has no SKU.")
        if sku_id is not None:
            for sku in skus:
                if sku.pk == sku_id:
                    return sku
            raise CommandError(f"SKU {sku_id} does not belong to product {product_id}.")
        if len(skus) > 1:
            listing = ", ".join(f"{sku.pk} ({sku.name or 'unnamed'})" for sku in skus)
            raise CommandError(f"Product {product_id} has several SKUs; choose one with --sku: {listing}")
        return skus[0]

    def _summary(self, batch):
        self.stdout.write(self.style.SUCCESS(
            f"Imported {batch.imported} key(s); skipped {batch.duplicates} duplicate(s) and "
            f"{batch.invalid} invalid line(s)."))
        for error in batch.errors[:SHOWN_ERRORS]:
            self.stdout.write(f"  line {error['line']}: {error['error']}")
        if batch.invalid > SHOWN_ERRORS:
            self.stdout.write(f"  … and {batch.invalid - SHOWN_ERRORS} more invalid line(s).")
