"""The tool's signing keys: kept in the database, published as a JWKS, rotated without downtime."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from jwcrypto.jwk import JWK

from kdgrade.lti.models import ToolKey

log = logging.getLogger(__name__)


def _new_key() -> ToolKey:
    jwk = JWK.generate(kty="RSA", size=2048)
    kid = jwk.thumbprint()
    public = json.loads(jwk.export_public())
    public.update({"kid": kid, "alg": "RS256", "use": "sig"})
    pem = jwk.export_to_pem(private_key=True, password=None).decode()
    return ToolKey.objects.create(kid=kid, private_pem=pem, public_jwk=public, signing=True, published=True)


def signing_key() -> ToolKey:
    """The key that signs new messages; the first call on a fresh install creates one."""
    key = ToolKey.objects.filter(signing=True, published=True).order_by("-created_at", "-id").first()
    if key is None:
        with transaction.atomic():
            key = ToolKey.objects.select_for_update().filter(signing=True, published=True).first() or _new_key()
            log.info("lti: created tool signing key %s", key.kid)
    return key


def jwks() -> dict:
    """Every published public key (the signing one and those rotated out but not yet retired)."""
    signing_key()
    return {"keys": [k.public_jwk for k in ToolKey.objects.filter(published=True).order_by("-created_at", "-id")]}


@transaction.atomic
def rotate_keys(*, retire_older_than_hours: float | None = None) -> ToolKey:
    """Make a new signing key.  The old ones stay published (launches and tokens in flight, and
    platforms that cache the JWKS, keep verifying) until retired with `retire_keys`."""
    ToolKey.objects.filter(signing=True).update(signing=False)
    key = _new_key()
    log.info("lti: rotated tool keys; new signing key %s", key.kid)
    if retire_older_than_hours is not None:
        retire_keys(older_than_hours=retire_older_than_hours)
    return key


def retire_keys(*, older_than_hours: float) -> int:
    """Unpublish the keys rotated out, once the current signing key is older than `older_than_hours`
    (by then every launch, deep-linking response and token signed by an old key has expired)."""
    current = ToolKey.objects.filter(signing=True, published=True).order_by("-created_at", "-id").first()
    if current is None or current.created_at > timezone.now() - timedelta(hours=older_than_hours):
        return 0
    n = ToolKey.objects.filter(signing=False, published=True).update(published=False, retired_at=timezone.now())
    if n:
        log.info("lti: retired %d tool key(s)", n)
    return n
