"""Security (issue 14): each platform signs with its own key set (platforms registered before keep the
shared one: own_key off), tool private keys encrypted at rest, single-use Dynamic Registration keys,
launch tokens stored as hashes (with rotation), frame origins per platform."""

import hashlib
import secrets

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import kdgrade.lti.models


def registered_before_keep_the_shared_key(apps, schema_editor):
    Platform = apps.get_model("lti", "Platform")
    for platform in Platform.objects.all():
        platform.own_key = False
        platform.jwks_id = secrets.token_urlsafe(16)
        platform.save(update_fields=["own_key", "jwks_id"])


def hash_launch_tokens(apps, schema_editor):
    LaunchSession = apps.get_model("lti", "LaunchSession")
    for session in LaunchSession.objects.all():
        session.token_hash = hashlib.sha256(session.token.encode()).hexdigest()
        session.token_issued_at = session.created_at
        session.save(update_fields=["token_hash", "token_issued_at"])


def encrypt_private_keys(apps, schema_editor):
    from cryptography.fernet import Fernet

    ToolKey = apps.get_model("lti", "ToolKey")
    fernet = Fernet(settings.KDGRADE_KEY_ENCRYPTION_KEY.encode())
    for key in ToolKey.objects.exclude(private_pem__startswith="fernet:"):
        key.private_pem = "fernet:" + fernet.encrypt(key.private_pem.encode()).decode()
        key.save(update_fields=["private_pem"])


class Migration(migrations.Migration):

    dependencies = [
        ("lti", "0003_database_cache_table"),
    ]

    operations = [
        # Per-platform key sets.
        migrations.AddField(
            model_name="platform", name="own_key",
            field=models.BooleanField(default=True, help_text="Signs with its own key, published only at its own keyset URL.  Off: the shared key on /lti/jwks/ (registrations made before per-platform keys; turn on, then give the LMS the new URL)."),
        ),
        migrations.AddField(model_name="platform", name="jwks_id", field=models.CharField(max_length=64, null=True)),
        migrations.RunPython(registered_before_keep_the_shared_key, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="platform", name="jwks_id",
            field=models.CharField(default=kdgrade.lti.models._new_jwks_id, editable=False, help_text="Names this platform's keyset URL, /lti/jwks/<jwks_id>/.", max_length=64, unique=True),
        ),
        migrations.AddField(
            model_name="platform", name="frame_origins",
            field=models.TextField(blank=True, help_text="Origins whose pages show kdgrade in a frame, beyond the issuer and the authentication URL, one per line: e.g. https://district.instructure.com for Canvas cloud."),
        ),
        migrations.AddField(
            model_name="toolkey", name="platform",
            field=models.ForeignKey(blank=True, help_text="Empty: the shared key set.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name="tool_keys", to="lti.platform"),
        ),
        migrations.AlterField(
            model_name="toolkey", name="private_pem",
            field=models.TextField(help_text="PEM, PKCS#8, encrypted.  Secret: never exported."),
        ),
        migrations.AlterField(
            model_name="toolkey", name="published",
            field=models.BooleanField(default=True, help_text="Listed on its key set's JWKS URL."),
        ),
        migrations.RunPython(encrypt_private_keys, migrations.RunPython.noop),
        # Single-use Dynamic Registration keys.
        migrations.CreateModel(
            name="RegistrationKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key_hash", models.CharField(max_length=64, unique=True)),
                ("created_by", models.CharField(blank=True, help_text="Who made it (user name or 'command').", max_length=150)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField()),
                ("used_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
        # Launch tokens: hashed, rotated.
        migrations.AddField(model_name="launchsession", name="token_hash",
                            field=models.CharField(default="", max_length=64)),
        migrations.AddField(model_name="launchsession", name="previous_token_hash",
                            field=models.CharField(blank=True, db_index=True, max_length=64)),
        migrations.AddField(model_name="launchsession", name="previous_valid_until",
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="launchsession", name="token_issued_at",
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.RunPython(hash_launch_tokens, migrations.RunPython.noop),
        migrations.RemoveField(model_name="launchsession", name="token"),
        migrations.AlterField(model_name="launchsession", name="token_hash",
                              field=models.CharField(max_length=64, unique=True)),
    ]
