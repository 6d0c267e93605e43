import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0003_reconciliation'),
    ]

    operations = [
        migrations.AddField(
            model_name='payment',
            name='fee',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='payment',
            name='fee_paid_by_buyer',
            field=models.BooleanField(default=False),
        ),
        migrations.AddConstraint(
            model_name='payment',
            constraint=models.CheckConstraint(condition=models.Q(('fee__gte', 0), models.Q(('fee_paid_by_buyer', False), ('amount__gt', models.F('fee')), _connector='OR')), name='payment_fee_valid'),
        ),
        migrations.CreateModel(
            name='PaymentMethodFee',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('provider', models.CharField(max_length=40, unique=True)),
                ('fixed', models.BigIntegerField(default=0)),
                ('basis_points', models.IntegerField(default=0)),
                ('passed_to_buyer', models.BooleanField(default=False)),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('updated_by', models.CharField(blank=True, max_length=254)),
            ],
            options={
                'constraints': [models.CheckConstraint(condition=models.Q(('fixed__gte', 0), ('fixed__lte', 100000)), name='payment_method_fee_fixed_range'), models.CheckConstraint(condition=models.Q(('basis_points__gte', 0), ('basis_points__lte', 2000)), name='payment_method_fee_bp_range')],
            },
        ),
    ]
