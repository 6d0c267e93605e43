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
