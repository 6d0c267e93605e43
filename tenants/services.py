"""Shop provisioning and lifecycle. The signup page, the platform API and
``kameng createshop`` all call :func:`shop_create`."""
from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing.limits import limit_refusal
from billing.services import subscription_start_trial
from platform_core import crypto
from platform_core.audit.services import audit_record
from tenants import schema as schemas
from tenants.models import Domain, Merchant, Shop, ShopMembership

logger = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
SLUG_MIN, SLUG_MAX = 3, 30
RESERVED_SLUGS = frozenset({
    "www", "api", "admin", "static", "media", "console", "manage", "mail", "email", "smtp", "imap", "pop",
    "pop3", "ftp", "ns1", "ns2", "app", "platform", "kameng", "support", "help", "status", "billing", "assets",
    "cdn", "hooks", "webhook", "webhooks", "auth", "login", "signup", "account", "accounts", "root", "template",
    "spare", "public", "shop", "shops", "dashboard", "healthz", "localhost",
})


class ShopCreationError(Exception):
    """Provisioning refused; ``field`` names the input at fault (for forms and the API)."""

    def __init__(self, message: str, *, field: str = "", code: str = "invalid"):
        super().__init__(message)
        self.message, self.field, self.code = message, field, code


def validate_slug(slug: str) -> str:
    slug = (slug or "").strip().lower()
    if not SLUG_MIN <= len(slug) <= SLUG_MAX:
        raise ShopCreationError(f"The shop address must be {SLUG_MIN} to {SLUG_MAX} characters long.",
                                field="slug", code="length")
    if not SLUG_RE.match(slug):
        raise ShopCreationError("The shop address may contain only lowercase letters, digits and hyphens, "
                                "and must start and end with a letter or digit.", field="slug", code="format")
    if "--" in slug:
        raise ShopCreationError("The shop address may not contain two hyphens in a row.", field="slug", code="format")
    if slug in RESERVED_SLUGS:
        raise ShopCreationError(f"“{slug}” is reserved; please choose another address.", field="slug", code="reserved")
    return slug


def schema_name_for(slug: str) -> str:
    return "shop_" + slug.replace("-", "_")


def shop_host(slug: str) -> str:
    return f"{slug}.{settings.PLATFORM_DOMAIN}"


def shop_url(shop: Shop, path: str = "/") -> str:
    port = "" if settings.PRODUCTION or settings.PORT in (80, 443) else f":{settings.PORT}"
    return f"{settings.PLATFORM_SCHEME}://{shop.primary_domain or shop_host(shop.slug)}{port}{path}"


# --- template and warm pool ----------------------------------------------------------

def template_ensure(verbosity: int = 0) -> Shop:
    """The migrated template schema every shop is cloned from (a real, inactive
    tenant row, so ``migrate`` keeps it current)."""
    template = Shop.objects.filter(status=Shop.Status.TEMPLATE).first()
    if template is None:
        template = Shop.objects.create(schema_name=schemas.TEMPLATE_SCHEMA, status=Shop.Status.TEMPLATE,
                                       name="Template")
    if not schemas.schema_exists(template.schema_name):
        template.create_schema(check_if_exists=True, sync_schema=True, verbosity=verbosity)
    return template


def spare_create() -> Shop:
    """Clone one spare schema from the template and park it in the pool."""
    template = template_ensure()
    with transaction.atomic():
        spare = Shop.objects.create(schema_name=f"spare_{secrets.token_hex(6)}", status=Shop.Status.SPARE)
        schemas.clone_schema(template.schema_name, spare.schema_name)
    return spare


POOL_LOCK_KEY = 0x4B414D454E47  # "KAMENG"


def spare_pool_refill(target: int | None = None) -> int:
    """Top the pool up to ``target`` spares; returns how many were made."""
    target = settings.KAMENG_SPARE_SHOPS if target is None else target
    made = 0
    with connection.cursor() as cursor:
        # one refiller at a time across all workers; the others have nothing to add
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [POOL_LOCK_KEY])
        if not cursor.fetchone()[0]:
            return 0
        try:
            while Shop.objects.filter(status=Shop.Status.SPARE).count() < target:
                spare_create()
                made += 1
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [POOL_LOCK_KEY])
    return made


def _claim_spare(schema_name: str) -> Shop | None:
    """Take a spare (skipping ones another signup holds) and rename its schema.
    Must run inside the caller's transaction: a rollback returns it to the pool."""
    template_state = schemas.migration_state(schemas.TEMPLATE_SCHEMA)
    for spare in Shop.objects.select_for_update(skip_locked=True).filter(status=Shop.Status.SPARE).order_by("id")[:5]:
        if schemas.migration_state(spare.schema_name) != template_state:
            # migrated at another version than the template: never hand it out
            logger.warning("spare schema %s is not at the template's migration state; skipped", spare.schema_name)
            continue
        schemas.rename_schema(spare.schema_name, schema_name)
        spare.schema_name = schema_name
        return spare
    return None


def _new_shop_row(schema_name: str) -> Shop:
    """No spare ready: clone the template right here (slower, still well under a second)."""
    template = template_ensure()
    shop = Shop(schema_name=schema_name, status=Shop.Status.SPARE)
    shop.save()
    schemas.clone_schema(template.schema_name, schema_name)
    return shop


# --- provisioning --------------------------------------------------------------------

@dataclass
class ProvisionedShop:
    shop: Shop
    owner: Merchant
    owner_created: bool
    url: str
    from_pool: bool


def _resolve_owner(*, owner: Merchant | None, owner_email: str, owner_password: str | None,
                   owner_name: str) -> tuple[Merchant, bool]:
    if owner is not None:
        return owner, False
    email = (owner_email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ShopCreationError("Enter a valid e-mail address.", field="email") from None
    existing = Merchant.objects.filter(email__iexact=email).first()
    if existing is not None:
        if owner_password is not None:
            raise ShopCreationError("An account with this e-mail already exists. Log in and create the shop "
                                    "from your account.", field="email", code="exists")
        return existing, False
    if owner_password is not None:
        try:
            validate_password(owner_password, Merchant(email=email, name=owner_name))
        except ValidationError as exc:
            raise ShopCreationError(" ".join(exc.messages), field="password", code="weak") from None
    merchant = Merchant.objects.create_user(email, owner_password, name=owner_name)
    return merchant, True


def shop_create(*, slug: str, name: str, owner: Merchant | None = None, owner_email: str = "",
                owner_password: str | None = None, owner_name: str = "", language: str = Shop.Language.ZH_HANS,
                currency: str = "CNY", sample_catalog: bool = True, actor: Merchant | None = None,
                request=None) -> ProvisionedShop:
    """Create a live shop: schema (from the warm pool), primary domain, owner
    membership, data key, defaults — all in one transaction, so a failure at any
    step leaves nothing behind (PostgreSQL DDL is transactional, the schema rename
    included). Slug races end in one shop and one ``ShopCreationError``."""
    slug = validate_slug(slug)
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ShopCreationError("Give the shop a name of 1 to 80 characters.", field="name")
    if language not in Shop.Language.values:
        raise ShopCreationError("Language must be en or zh-hans.", field="language")
    if not re.fullmatch(r"[A-Z]{3}", currency or ""):
        raise ShopCreationError("Currency must be a three-letter ISO code such as CNY.", field="currency")
    schema_name = schema_name_for(slug)
    connection.set_schema_to_public()
    try:
        with transaction.atomic():
            # one signup per slug at a time: without it two racers can each hold half of
            # what the other needs (the renamed schema, the slug row) and deadlock
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"shop-slug:{slug}"])
            if Shop.objects.filter(slug=slug).exists() or Domain.objects.filter(domain=shop_host(slug)).exists():
                raise ShopCreationError(f"The address “{slug}” is already taken.", field="slug", code="taken")
            owner, owner_created = _resolve_owner(owner=owner, owner_email=owner_email,
                                                  owner_password=owner_password, owner_name=owner_name)
            shop = _claim_spare(schema_name)
            from_pool = shop is not None
            if shop is None:
                shop = _new_shop_row(schema_name)
            now = timezone.now()
            shop.slug, shop.name, shop.language, shop.currency = slug, name, language, currency
            shop.status, shop.created_at, shop.launched_at = Shop.Status.TRIAL, now, now
            shop.save()
            Domain.objects.create(tenant=shop, domain=shop_host(slug), is_primary=True,
                                  is_platform_subdomain=True, verified_at=now)
            ShopMembership.objects.create(shop=shop, merchant=owner, role=ShopMembership.Role.OWNER)
            crypto.create_data_key(shop)
            subscription_start_trial(shop=shop, now=now)  # before seeding: seeders ask the plan
            audit_record(action="shop.created", actor=actor or owner, target=shop, request=request,
                         data={"slug": slug, "owner": owner.email, "from_pool": from_pool})
            with tenant_context(shop):
                _seed_shop(shop, owner=owner, sample_catalog=sample_catalog)
            connection.set_schema_to_public()
            transaction.on_commit(lambda: _after_create(shop.pk))
    except IntegrityError as exc:
        # the loser of a concurrent signup for the same slug lands here
        if "slug" in str(exc) or "domain" in str(exc) or "already exists" in str(exc):
            raise ShopCreationError(f"The address “{slug}” is already taken.", field="slug", code="taken") from None
        raise
    finally:
        connection.set_schema_to_public()
    return ProvisionedShop(shop=shop, owner=owner, owner_created=owner_created, url=shop_url(shop, "/manage/"),
                           from_pool=from_pool)


def _seed_shop(shop: Shop, *, owner: Merchant, sample_catalog: bool) -> None:
    """Defaults inside the new shop's schema: first audit entry and every
    ``shop_provisioned`` seeder (the catalog app adds its sample catalog there)."""
    from tenants.seeding import run_seeders

    audit_record(action="shop.launched", actor=owner, target=shop, data={"slug": shop.slug})
    run_seeders(shop, sample_catalog=sample_catalog)


def _after_create(shop_id: int) -> None:
    from tenants import tasks

    tasks.send_welcome_email.delay(shop_id)
    tasks.refill_spare_shops.delay()


# --- lifecycle -----------------------------------------------------------------------

def shop_set_status(*, shop: Shop, status: str, reason: str, actor: Merchant | None, request=None) -> Shop:
    """Suspend, reactivate or close a shop; the reason is required and audited."""
    allowed = {Shop.Status.SUSPENDED, Shop.Status.ACTIVE, Shop.Status.TRIAL, Shop.Status.CLOSED}
    if status not in allowed:
        raise ShopCreationError(f"A shop cannot be set to {status}.", field="status")
    reason = (reason or "").strip()
    if not reason:
        raise ShopCreationError("Give a reason; it is kept in the audit log.", field="reason")
    if shop.status in (Shop.Status.TEMPLATE, Shop.Status.SPARE):
        raise ShopCreationError("Internal schemas cannot change status.", field="status")
    with transaction.atomic():
        locked = Shop.objects.select_for_update().get(pk=shop.pk)
        previous = locked.status
        locked.status, locked.status_reason = status, reason
        locked.save(update_fields=["status", "status_reason"])
        audit_record(action=f"shop.status.{status}", actor=actor, target=locked, reason=reason, request=request,
                     data={"from": previous, "to": status, "slug": locked.slug})
    return locked


def remember_membership(merchant, shop_id: int, membership: ShopMembership | None) -> None:
    """What ``membership_for(merchant, shop)`` answers for the rest of this request,
    read with the merchant by whoever authenticated it (the API token's statement)."""
    merchant._membership_read = (shop_id, membership)


def membership_for(merchant, shop) -> ShopMembership | None:
    if merchant is None or not merchant.is_authenticated or not merchant.is_active:
        return None
    read = getattr(merchant, "_membership_read", None)
    if read is not None and read[0] == shop.pk:
        return read[1]
    from platform_core.db.rows import select_row

    # on every API request: a compiled-once read (public table, found through search_path)
    return select_row(ShopMembership, "shop_id = %s AND merchant_id = %s", [shop.pk, merchant.pk],
                      suffix="ORDER BY id LIMIT 1")


# --- custom domains ------------------------------------------------------------------

HOSTNAME_RE = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def domain_add(*, shop: Shop, hostname: str, actor=None, request=None) -> Domain:
    hostname = (hostname or "").strip().lower().rstrip(".")
    if not HOSTNAME_RE.match(hostname):
        raise ShopCreationError("Enter a host name such as shop.example.com.", field="domain")
    if hostname == settings.PLATFORM_DOMAIN or hostname.endswith("." + settings.PLATFORM_DOMAIN):
        raise ShopCreationError("Platform sub-domains are assigned automatically.", field="domain")
    try:
        with transaction.atomic():
            # inside the transaction: the limit check holds its lock until the insert commits
            if refusal := limit_refusal(shop, "custom_domains"):
                raise ShopCreationError(refusal, field="domain", code="plan_limit")
            domain = Domain.objects.create(tenant=shop, domain=hostname, is_primary=False)
            audit_record(action="domain.added", actor=actor, target=domain, request=request,
                         data={"domain": hostname, "shop": shop.slug})
    except IntegrityError:
        raise ShopCreationError("This host name is already in use.", field="domain", code="taken") from None
    return domain


def _txt_records(name: str) -> list[str]:
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=5)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return []
    except dns.exception.DNSException as exc:
        raise ShopCreationError(f"DNS lookup failed: {exc.__class__.__name__}", field="domain") from None
    return [b"".join(rdata.strings).decode(errors="replace") for rdata in answer]


def domain_verify(*, domain: Domain, actor=None, request=None, resolver=_txt_records) -> bool:
    """Check the DNS TXT token; a custom domain routes only once this succeeded."""
    if domain.is_platform_subdomain:
        return True
    now = timezone.now()
    try:
        records = resolver(domain.txt_record_name)
        error = "" if domain.txt_record_value in records else \
            f"TXT record {domain.txt_record_name} does not contain {domain.txt_record_value}"
    except ShopCreationError as exc:
        error = exc.message
    with transaction.atomic():
        domain.last_check_at, domain.last_check_error = now, error
        if not error and domain.verified_at is None:
            domain.verified_at = now
        domain.save(update_fields=["last_check_at", "last_check_error", "verified_at"])
        audit_record(action="domain.verified" if not error else "domain.verification_failed", actor=actor,
                     target=domain, request=request, data={"domain": domain.domain, "error": error})
    return not error


SETTINGS_FIELDS = ("name", "language", "currency", "primary_color", "accent_color", "logo")


def shop_update_settings(*, shop: Shop, changes: dict, actor=None, request=None) -> Shop:
    """Name, language, currency and branding of a shop (audited)."""
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise ShopCreationError(f"These settings cannot be changed here: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        locked = Shop.objects.select_for_update().get(pk=shop.pk)
        before = {field: str(getattr(locked, field)) for field in changes}
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.full_clean(exclude=["schema_name", "slug"])
        locked.save()
        after = {field: str(getattr(locked, field)) for field in changes}
        audit_record(action="shop.settings_changed", actor=actor, target=locked, request=request,
                     data={k: [before[k], after[k]] for k in changes if before[k] != after[k]})
    return locked


# --- team ----------------------------------------------------------------------------

def membership_add(*, shop: Shop, email: str, role: str, actor=None, request=None) -> ShopMembership:
    """Give an existing Kameng account a role in ``shop`` (owners and admins only)."""
    if role not in ShopMembership.Role.values:
        raise ShopCreationError("Role must be owner, admin, staff or finance.", field="role")
    merchant = Merchant.objects.filter(email__iexact=(email or "").strip(), is_active=True).first()
    if merchant is None:
        raise ShopCreationError("No Kameng account uses this e-mail; ask them to sign up first.", field="email")
    try:
        with transaction.atomic():
            # inside the transaction: the limit check holds its lock until the insert commits
            if refusal := limit_refusal(shop, "staff_seats"):
                raise ShopCreationError(refusal, field="email", code="plan_limit")
            membership = ShopMembership.objects.create(shop=shop, merchant=merchant, role=role)
            audit_record(action="membership.added", actor=actor, target=membership, request=request,
                         data={"email": merchant.email, "role": role, "shop": shop.slug})
    except IntegrityError:
        raise ShopCreationError("This account is already a member of the shop.", field="email") from None
    return membership


def membership_remove(*, membership: ShopMembership, actor=None, request=None) -> None:
    with transaction.atomic():
        owners = ShopMembership.objects.select_for_update().filter(shop=membership.shop_id, role="owner")
        if membership.role == "owner" and owners.count() <= 1:
            raise ShopCreationError("A shop keeps at least one owner.", field="role")
        audit_record(action="membership.removed", actor=actor, target=membership, request=request,
                     data={"email": membership.merchant.email, "role": membership.role})
        membership.delete()
