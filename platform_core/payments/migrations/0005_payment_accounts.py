from django.db import migrations, models


class Migration(migrations.Migration):
    """Which merchant account took a payment / verified an event. Existing rows were all
    taken by the one account a shop had: ``main`` (docs/decisions/0028)."""

    dependencies = [
        ("payments", "0004_payment_fees"),
    ]

    operations = [
        migrations.AddField(model_name="payment", name="account",
                            field=models.CharField(default="main", max_length=40)),
        migrations.AddField(model_name="webhookevent", name="account",
                            field=models.CharField(default="main", max_length=40)),
        migrations.RemoveConstraint(model_name="payment", name="payment_external_id_unique"),
        migrations.AddConstraint(model_name="payment", constraint=models.UniqueConstraint(
            fields=("provider", "account", "external_id"), name="payment_external_id_unique")),
        migrations.RemoveConstraint(model_name="webhookevent", name="webhook_event_once"),
        migrations.AddConstraint(model_name="webhookevent", constraint=models.UniqueConstraint(
            fields=("provider", "account", "event_id"), name="webhook_event_once")),
    ]
