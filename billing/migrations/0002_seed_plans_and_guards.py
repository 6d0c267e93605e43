"""Seed plans (Free, Pro, Business), guard issued invoices in the database, and put
shops that existed before billing on a trial of the trial plan."""
from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone

ALL_KINDS = ["plugins.payment", "plugins.marketing", "plugins.distribution", "plugins.supplier"]
PLANS = [
    # code, name, fee, commission_bp, products, seats, domains, monthly orders, features, trial days
    ("free", "Free", 0, 300, 20, 1, 0, 100, ALL_KINDS[:2], 0),
    ("pro", "Pro", 9900, 150, 500, 5, 1, 5000, ALL_KINDS[:3], 14),
    ("business", "Business", 29900, 50, None, 25, 10, None, ALL_KINDS, 14),
]

INVOICE_GUARD = """
CREATE OR REPLACE FUNCTION public.billing_invoice_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'UPDATE' THEN
    RAISE EXCEPTION 'issued invoices cannot be deleted (% refused); issue a credit note', TG_OP
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF (NEW.shop_id, NEW.kind, NEW.number, NEW.year, NEW.sequence, NEW.period_start, NEW.period_end, NEW.currency,
      NEW.subtotal, NEW.tax_bp, NEW.tax, NEW.total, NEW.line_count, NEW.credits_id, NEW.bill_to, NEW.issued_at, NEW.due_at)
     IS DISTINCT FROM
     (OLD.shop_id, OLD.kind, OLD.number, OLD.year, OLD.sequence, OLD.period_start, OLD.period_end, OLD.currency,
      OLD.subtotal, OLD.tax_bp, OLD.tax, OLD.total, OLD.line_count, OLD.credits_id, OLD.bill_to, OLD.issued_at, OLD.due_at) THEN
    RAISE EXCEPTION 'invoice % is issued and cannot change; issue a credit note', OLD.number
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF OLD.pdf_key <> '' AND NEW.pdf_key IS DISTINCT FROM OLD.pdf_key THEN
    RAISE EXCEPTION 'the PDF of invoice % is already stored', OLD.number USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION public.billing_invoiceline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    -- the invoice fixes its number of lines when issued; none can be added afterwards
    IF (SELECT count(*) FROM billing_invoiceline WHERE invoice_id = NEW.invoice_id)
       >= (SELECT line_count FROM billing_invoice WHERE id = NEW.invoice_id) THEN
      RAISE EXCEPTION 'invoice % is issued; lines cannot be added', NEW.invoice_id
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'invoice lines cannot change (% refused); issue a credit note', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER billing_invoice_immutable BEFORE UPDATE OR DELETE ON billing_invoice
FOR EACH ROW EXECUTE FUNCTION public.billing_invoice_immutable();
CREATE TRIGGER billing_invoice_no_truncate BEFORE TRUNCATE ON billing_invoice
FOR EACH STATEMENT EXECUTE FUNCTION public.billing_invoice_immutable();
CREATE TRIGGER billing_invoiceline_append_only BEFORE INSERT OR UPDATE OR DELETE ON billing_invoiceline
FOR EACH ROW EXECUTE FUNCTION public.billing_invoiceline_append_only();
CREATE TRIGGER billing_invoiceline_no_truncate BEFORE TRUNCATE ON billing_invoiceline
FOR EACH STATEMENT EXECUTE FUNCTION public.billing_invoiceline_append_only();
"""

UNGUARD = """
DROP TRIGGER IF EXISTS billing_invoice_immutable ON billing_invoice;
DROP TRIGGER IF EXISTS billing_invoice_no_truncate ON billing_invoice;
DROP TRIGGER IF EXISTS billing_invoiceline_append_only ON billing_invoiceline;
DROP TRIGGER IF EXISTS billing_invoiceline_no_truncate ON billing_invoiceline;
"""


def seed(apps, schema_editor):
    if schema_editor.connection.schema_name != "public":
        return
    Plan = apps.get_model("billing", "Plan")
    for order, (code, name, fee, bp, products, seats, domains, orders, features, trial) in enumerate(PLANS):
        Plan.objects.get_or_create(code=code, defaults=dict(
            name=name, monthly_fee=fee, currency="CNY", commission_bp=bp, max_products=products,
            max_staff_seats=seats, max_custom_domains=domains, max_monthly_orders=orders, features=features,
            trial_days=trial, sort_order=order))
    with schema_editor.connection.cursor() as cursor:  # raw: the bodies contain literal %
        cursor.execute(INVOICE_GUARD)
    backfill_subscriptions(apps)


def backfill_subscriptions(apps) -> int:
    """Shops older than billing start a trial on the trial plan today."""
    Plan = apps.get_model("billing", "Plan")
    Shop = apps.get_model("tenants", "Shop")
    Subscription = apps.get_model("billing", "Subscription")
    SubscriptionEvent = apps.get_model("billing", "SubscriptionEvent")
    PlanSpan = apps.get_model("billing", "PlanSpan")
    plan = Plan.objects.get(code=getattr(settings, "KAMENG_BILLING_TRIAL_PLAN", "pro"))
    now = timezone.now()
    count = 0
    for shop in Shop.objects.exclude(status__in=["template", "spare"]).filter(subscription__isnull=True):
        sub = Subscription.objects.create(shop=shop, plan=plan, status="trial",
                                          trial_ends_at=now + timedelta(days=plan.trial_days))
        SubscriptionEvent.objects.create(subscription=sub, kind="subscription.started", to_status="trial",
                                         data={"plan": plan.code, "backfilled": True})
        PlanSpan.objects.create(subscription=sub, plan=plan, start=timezone.localdate(now), charged=False)
        count += 1
    return count


def unseed(apps, schema_editor):
    schema_editor.execute(UNGUARD)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial"), ("tenants", "0002_pg_trgm")]
    operations = [migrations.RunPython(seed, unseed)]
