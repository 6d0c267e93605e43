"""Per-shop plugin state; lives in each shop's schema."""
from django.db import models
from django.utils import timezone


class PluginConfig(models.Model):
    slug = models.SlugField(max_length=60, unique=True)
    enabled = models.BooleanField(default=False)
    settings = models.JSONField(default=dict, blank=True)
    #: field name -> ciphertext from platform_core.crypto (never plaintext)
    secrets = models.JSONField(default=dict, blank=True)
    plugin_version = models.CharField(max_length=20, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by_email = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = "plugin"

    def __str__(self):
        return f"{self.slug} ({'enabled' if self.enabled else 'disabled'})"


class PluginAccount(models.Model):
    """One merchant account of a payment plugin (a shop's main and backup Alipay
    merchant). Payments go to the enabled account with the lowest ``priority`` and fail
    over to the next when a gateway is down or refuses the account's credentials.

    The account keyed ``main`` is the plugin configuration itself: its settings and
    secrets stay in :class:`PluginConfig` (so a configuration from before accounts
    existed is the main account, unchanged); its row, when there is one, only holds its
    label, priority and switch. Every other account keeps its own settings and
    encrypted secrets here. A key never changes: payments and webhook URLs name it."""

    MAIN = "main"

    config = models.ForeignKey(PluginConfig, on_delete=models.CASCADE, related_name="accounts")
    key = models.SlugField(max_length=40)
    label = models.CharField(max_length=80)
    priority = models.PositiveSmallIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    settings = models.JSONField(default=dict, blank=True)
    #: field name -> ciphertext bound to this account (never plaintext)
    secrets = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["config", "key"], name="plugin_account_key_unique"),
            models.CheckConstraint(name="plugin_account_key_format",
                                   condition=models.Q(key__regex=r"^[a-z0-9-]{1,40}$")),
            # the main account's settings live on the config, never here
            models.CheckConstraint(name="plugin_account_main_holds_no_settings",
                                   condition=~models.Q(key="main") | (models.Q(settings={}) & models.Q(secrets={}))),
        ]

    def __str__(self):
        return f"{self.label} ({self.key})"
