"""Card key -> SKU: the per-row foreign-key trigger becomes one check per statement.

PostgreSQL checks a foreign key with one trigger call and one lookup per inserted row;
on a 1,000,000-key import that was a third of the database's time. The same guarantees,
per statement (docs/decisions/0037-card-key-sku-checked-per-statement.md):

* inserting keys: every SKU they name must exist, locked FOR KEY SHARE (as PostgreSQL's
  own check does) so a concurrent delete of the SKU waits for the insert to commit;
* moving a key to another SKU is refused (keys never move);
* deleting a SKU that still has keys fails at commit (deferred, like the old constraint:
  Django deletes the keys first, in the same transaction), in READ COMMITTED
  transactions (the level Kameng uses; stricter ones are refused);
* ``TRUNCATE catalog_sku`` still cannot leave keys behind: order lines reference SKUs
  and keys reference order lines (real foreign keys), so a TRUNCATE of SKUs fails
  unless ``CASCADE`` (or the statement) takes the keys too.

The functions live in ``public`` (shared by every shop schema; the triggers, which a
schema clone copies, name them). They read the schema from ``TG_TABLE_SCHEMA``, never
from ``search_path``.
"""
import django.db.models.deletion
from django.db import migrations, models

FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION public.kameng_cardkey_skus_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  wanted bigint;
  locked bigint;
BEGIN
  SELECT count(DISTINCT sku_id) INTO wanted FROM new_keys;
  EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %I.catalog_sku WHERE id IN (SELECT sku_id FROM new_keys) '
                 'FOR KEY SHARE) s', TG_TABLE_SCHEMA) INTO locked;
  IF locked < wanted THEN
    RAISE EXCEPTION 'insert on table "inventory_cardkey" violates foreign key "cardkey_sku": the SKU does not exist'
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION public.kameng_cardkey_sku_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'a card key cannot move to another SKU' USING ERRCODE = 'foreign_key_violation';
END $$;

CREATE OR REPLACE FUNCTION public.kameng_sku_without_keys() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  still_has_keys boolean;
BEGIN
  -- PostgreSQL's own check also sees keys committed after this transaction's snapshot;
  -- under READ COMMITTED this statement's snapshot does, under a stricter level it would not
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'delete SKUs in a READ COMMITTED transaction (the card-key check must see keys added meanwhile)'
      USING ERRCODE = 'feature_not_supported';
  END IF;
  EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.inventory_cardkey WHERE sku_id = $1)', TG_TABLE_SCHEMA)
    INTO still_has_keys USING OLD.id;
  IF still_has_keys THEN
    RAISE EXCEPTION 'delete on table "catalog_sku" violates foreign key "cardkey_sku": SKU % still has card keys',
      OLD.id USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END $$;

"""

TRIGGERS = """
CREATE TRIGGER cardkey_sku_exists AFTER INSERT ON inventory_cardkey
  REFERENCING NEW TABLE AS new_keys FOR EACH STATEMENT EXECUTE FUNCTION public.kameng_cardkey_skus_exist();
CREATE TRIGGER cardkey_sku_fixed BEFORE UPDATE OF sku_id ON inventory_cardkey
  FOR EACH ROW WHEN (OLD.sku_id IS DISTINCT FROM NEW.sku_id) EXECUTE FUNCTION public.kameng_cardkey_sku_fixed();
CREATE CONSTRAINT TRIGGER sku_without_keys AFTER DELETE ON catalog_sku
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.kameng_sku_without_keys();
"""


def forwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        # each shop schema runs this migration, some in parallel processes: create the
        # shared functions once, under a lock, and only where they are missing
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('kameng_cardkey_sku_functions'))")
        cursor.execute("SELECT to_regprocedure('public.kameng_sku_without_keys()') IS NULL")
        if cursor.fetchone()[0]:
            cursor.execute(FUNCTIONS)
        cursor.execute(TRIGGERS)


def backwards(apps, schema_editor):
    schema_editor.execute("DROP TRIGGER IF EXISTS cardkey_sku_exists ON inventory_cardkey")
    schema_editor.execute("DROP TRIGGER IF EXISTS cardkey_sku_fixed ON inventory_cardkey")
    schema_editor.execute("DROP TRIGGER IF EXISTS sku_without_keys ON catalog_sku")


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0001_initial'),
        ('inventory', '0003_remove_cardkey_cardkey_available_by_sku_and_more'),
    ]

    operations = [
        migrations.AlterField(
            model_name='cardkey',
            name='sku',
            field=models.ForeignKey(db_constraint=False, db_index=False,
                                    on_delete=django.db.models.deletion.CASCADE, related_name='keys',
                                    to='catalog.sku'),
        ),
        # backwards: the triggers go before AlterField brings the constraint back
        migrations.RunPython(forwards, backwards),
    ]
