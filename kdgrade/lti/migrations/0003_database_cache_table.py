"""The database cache table (`kdgrade_cache`) that the LTI launch reads when CACHE_URL is not set
(platform keysets, used nonces, access tokens).  Created by `migrate`, whatever CACHE_URL says now,
so that a later switch from Redis to the database cache needs no extra command."""

from django.core.management import call_command
from django.db import migrations

CACHE_TABLE = "kdgrade_cache"


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", CACHE_TABLE, database=schema_editor.connection.alias, verbosity=0)


def drop_cache_table(apps, schema_editor):
    table = schema_editor.quote_name(CACHE_TABLE)
    schema_editor.execute(f"DROP TABLE IF EXISTS {table}")


class Migration(migrations.Migration):
    dependencies = [("lti", "0002_loginstate")]

    operations = [migrations.RunPython(create_cache_table, drop_cache_table)]
