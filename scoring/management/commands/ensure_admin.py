import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the admin account on first run. The password comes from KDGRADE_ADMIN_PASSWORD, "
        "or is generated and written to DATA_DIR/admin-password.txt (readable by you only)."
    )

    def handle(self, *args: object, **options: object) -> None:
        User = get_user_model()
        username = os.environ.get("KDGRADE_ADMIN_USER", "admin")
        if User.objects.filter(username=username).exists():
            self.stdout.write(
                f"Admin account '{username}' exists (change its password: manage.py changepassword {username})."
            )
            return
        password = os.environ.get("KDGRADE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        path = settings.DATA_DIR / "admin-password.txt"
        path.write_text(f"{username}\n{password}\n")
        path.chmod(0o600)
        self.stdout.write(f"Created admin account '{username}'; its password is in {path}.")
