"""The audit log is append-only in the database itself: UPDATE and DELETE raise."""
from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION public.kameng_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
"""
TRIGGER = """
CREATE TRIGGER audit_auditevent_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_auditevent
FOR EACH STATEMENT EXECUTE FUNCTION public.kameng_audit_append_only();
"""


def forwards(apps, schema_editor):
    # public is always migrated before any shop schema, so the shared function exists
    with schema_editor.connection.cursor() as cursor:  # raw: the body contains a literal %
        if schema_editor.connection.schema_name == "public":
            cursor.execute(FUNCTION)
        cursor.execute(TRIGGER)


def backwards(apps, schema_editor):
    schema_editor.execute("DROP TRIGGER IF EXISTS audit_auditevent_append_only ON audit_auditevent")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
