import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    """Merchant accounts per plugin. No data moves: an existing configuration is the
    ``main`` account as it stands (docs/decisions/0028)."""

    dependencies = [
        ("plugins", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="PluginAccount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.SlugField(max_length=40)),
                ("label", models.CharField(max_length=80)),
                ("priority", models.PositiveSmallIntegerField(default=0)),
                ("enabled", models.BooleanField(default=True)),
                ("settings", models.JSONField(blank=True, default=dict)),
                ("secrets", models.JSONField(blank=True, default=dict)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("config", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="accounts",
                                             to="plugins.pluginconfig")),
            ],
            options={
                "ordering": ["priority", "id"],
                "constraints": [
                    models.UniqueConstraint(fields=("config", "key"), name="plugin_account_key_unique"),
                    models.CheckConstraint(condition=models.Q(("key__regex", "^[a-z0-9-]{1,40}$")),
                                           name="plugin_account_key_format"),
                    models.CheckConstraint(
                        condition=models.Q(models.Q(("key", "main"), _negated=True),
                                           models.Q(("settings", {}), ("secrets", {})), _connector="OR"),
                        name="plugin_account_main_holds_no_settings"),
                ],
            },
        ),
    ]
