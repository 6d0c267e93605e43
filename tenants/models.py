"""Shops (tenants), their domains, merchant accounts and their roles — all in public."""
from __future__ import annotations

import secrets

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils.functional import cached_property
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_tenants.models import DomainMixin, TenantMixin


class MerchantManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, email):
        return self.get(email__iexact=email)


class Merchant(AbstractBaseUser, PermissionsMixin):
    """A platform-wide login: one merchant may own or work in several shops.

    ``is_staff`` means platform staff (the owner's console); shop access comes only
    from :class:`ShopMembership`.
    """

    email = models.EmailField(_("e-mail"), unique=True)
    name = models.CharField(_("name"), max_length=120, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(_("platform staff"), default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = MerchantManager()
    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"

    class Meta:
        verbose_name = _("merchant")
        constraints = [models.UniqueConstraint(models.functions.Lower("email"), name="merchant_email_ci_unique")]

    def __str__(self):
        return self.email


class ShopQuerySet(models.QuerySet):
    def live(self):
        return self.filter(status__in=Shop.LIVE_STATUSES)

    def real(self):
        """Shops that belong to somebody (not the template, not spare schemas)."""
        return self.exclude(status__in=[Shop.Status.TEMPLATE, Shop.Status.SPARE])


class Shop(TenantMixin):
    class Status(models.TextChoices):
        TRIAL = "trial", _("trial")
        ACTIVE = "active", _("active")
        SUSPENDED = "suspended", _("suspended")
        CLOSED = "closed", _("closed")
        # internal: the migrated template and the warm pool of spare schemas
        TEMPLATE = "template", _("template")
        SPARE = "spare", _("spare")

    class Language(models.TextChoices):
        EN = "en", "English"
        ZH_HANS = "zh-hans", "简体中文"

    LIVE_STATUSES = (Status.TRIAL, Status.ACTIVE)

    slug = models.SlugField(max_length=30, unique=True, null=True, blank=True)
    name = models.CharField(max_length=80, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.TRIAL)
    status_reason = models.CharField(max_length=300, blank=True)
    language = models.CharField(max_length=8, choices=Language.choices, default=Language.ZH_HANS)
    currency = models.CharField(max_length=3, default="CNY")
    theme = models.CharField(max_length=40, default="default")
    logo = models.ImageField(upload_to="branding/", blank=True)
    primary_color = models.CharField(max_length=7, default="#e4393c")
    accent_color = models.CharField(max_length=7, default="#1f2937")
    created_at = models.DateTimeField(default=timezone.now)
    launched_at = models.DateTimeField(null=True, blank=True)

    # we create schemas ourselves (pool claim or lean clone), never on save()
    auto_create_schema = False
    auto_drop_schema = False

    objects = ShopQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="shop_slug_set_unless_internal",
                condition=Q(status__in=["template", "spare"]) | Q(slug__isnull=False),
            ),
            models.CheckConstraint(name="shop_primary_color_hex", condition=Q(primary_color__regex=r"^#[0-9a-fA-F]{6}$")),
            models.CheckConstraint(name="shop_accent_color_hex", condition=Q(accent_color__regex=r"^#[0-9a-fA-F]{6}$")),
        ]

    def __str__(self):
        return self.name or self.slug or self.schema_name

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE_STATUSES

    @cached_property
    def primary_domain(self) -> str | None:
        # cached on the instance; the routing cache stores shops with it resolved
        domain = self.domains.filter(is_primary=True).first()
        return domain.domain if domain else None


class Domain(DomainMixin):
    """A host name that routes to a shop. Custom domains route only once verified."""

    is_platform_subdomain = models.BooleanField(default=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_token = models.CharField(max_length=64, default=secrets.token_hex, editable=False)
    last_check_at = models.DateTimeField(null=True, blank=True)
    last_check_error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], condition=Q(is_primary=True), name="one_primary_domain_per_shop"),
        ]

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None

    @property
    def txt_record_name(self) -> str:
        return f"_kameng-verify.{self.domain}"

    @property
    def txt_record_value(self) -> str:
        return f"kameng-verify={self.verification_token}"


class ShopMembership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", _("owner")
        ADMIN = "admin", _("admin")
        STAFF = "staff", _("staff")
        FINANCE = "finance", _("finance")

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="memberships")
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "merchant"], name="one_membership_per_shop")]

    def __str__(self):
        return f"{self.merchant} @ {self.shop} ({self.role})"


class ShopDataKey(models.Model):
    """A shop's data-encryption key, wrapped (encrypted) by a platform master key."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="data_keys")
    version = models.PositiveIntegerField()
    wrapped_key = models.BinaryField()
    master_key_id = models.CharField(max_length=16)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "version"], name="one_data_key_per_version")]
