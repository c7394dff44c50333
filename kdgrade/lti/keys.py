"""The tool's signing keys: kept in the database (private halves encrypted), published as JWKS, rotated
without downtime.

Each platform registered since per-platform keys exist has its own key set, published only at its own
keyset URL (/lti/jwks/<platform.jwks_id>/), which is the one given to that platform.  Whatever client id
and token audience a platform claims, what kdgrade signs for it verifies only against that platform's
keys, so a platform can never obtain a client assertion (or Deep Linking response) that another
platform accepts.  Platforms registered before keep the shared key set on /lti/jwks/ (`own_key` off)
until an administrator gives them their own.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from jwcrypto.jwk import JWK

from kdgrade.lti.models import Platform, ToolKey

log = logging.getLogger(__name__)

ENCRYPTED_PREFIX = "fernet:"


def _fernet() -> Fernet:
    return Fernet(settings.KDGRADE_KEY_ENCRYPTION_KEY.encode())


def encrypt_pem(pem: str) -> str:
    """The stored form of a private key: encrypted with KDGRADE_KEY_ENCRYPTION_KEY."""
    return ENCRYPTED_PREFIX + _fernet().encrypt(pem.encode()).decode()


def private_pem(key: ToolKey) -> str:
    """The private half of `key` as PEM (decrypted; a key stored before encryption is read as is)."""
    stored = key.private_pem
    if not stored.startswith(ENCRYPTED_PREFIX):
        return stored
    try:
        return _fernet().decrypt(stored[len(ENCRYPTED_PREFIX):].encode()).decode()
    except InvalidToken:
        raise RuntimeError(f"tool key {key.kid} cannot be decrypted: KDGRADE_KEY_ENCRYPTION_KEY is not the "
                           "key it was encrypted with") from None


def _new_key(platform: Platform | None) -> ToolKey:
    jwk = JWK.generate(kty="RSA", size=2048)
    kid = jwk.thumbprint()
    public = json.loads(jwk.export_public())
    public.update({"kid": kid, "alg": "RS256", "use": "sig"})
    pem = jwk.export_to_pem(private_key=True, password=None).decode()
    return ToolKey.objects.create(kid=kid, private_pem=encrypt_pem(pem), public_jwk=public, signing=True,
                                  published=True, platform=platform)


def _scope(platform: Platform | None):
    return ToolKey.objects.filter(platform=platform)


def signing_key(platform: Platform | None = None) -> ToolKey:
    """The key that signs new messages of `platform`'s key set (None: the shared set); the first call
    creates one."""
    key = _scope(platform).filter(signing=True, published=True).order_by("-created_at", "-id").first()
    if key is None:
        with transaction.atomic():
            key = (_scope(platform).select_for_update().filter(signing=True, published=True).first()
                   or _new_key(platform))
            log.info("lti: created tool signing key %s (%s)", key.kid,
                     f"platform {platform.pk}" if platform else "shared")
    return key


def key_owner(platform: Platform) -> Platform | None:
    """Whose key set signs for `platform`: its own, or the shared one (None) for a legacy registration."""
    return platform if platform.own_key else None


def signing_key_for(platform: Platform) -> ToolKey:
    """The key that signs what kdgrade sends to `platform` (client assertions, Deep Linking responses)."""
    return signing_key(key_owner(platform))


def jwks(platform: Platform | None = None) -> dict:
    """Every published public key of one key set (the signing one and those rotated out, not retired)."""
    signing_key(platform)
    return {"keys": [k.public_jwk for k in _scope(platform).filter(published=True).order_by("-created_at", "-id")]}


def jwks_url(base: str, platform: Platform | None) -> str:
    """The keyset URL to give a platform: its own, or the shared one for a legacy registration."""
    if platform is None or not platform.own_key:
        return f"{base}/lti/jwks/"
    return f"{base}/lti/jwks/{platform.jwks_id}/"


@transaction.atomic
def rotate_keys(*, retire_older_than_hours: float | None = None, platform: Platform | None = None) -> ToolKey:
    """Make a new signing key for one key set.  The old ones stay published (launches and tokens in
    flight, and platforms that cache the JWKS, keep verifying) until retired with `retire_keys`."""
    _scope(platform).filter(signing=True).update(signing=False)
    key = _new_key(platform)
    log.info("lti: rotated tool keys (%s); new signing key %s", f"platform {platform.pk}" if platform else "shared",
             key.kid)
    if retire_older_than_hours is not None:
        retire_keys(older_than_hours=retire_older_than_hours, platform=platform)
    return key


def retire_keys(*, older_than_hours: float, platform: Platform | None = None) -> int:
    """Unpublish the keys of one key set rotated out, once its signing key is older than
    `older_than_hours` (by then everything signed by an old key has expired)."""
    current = _scope(platform).filter(signing=True, published=True).order_by("-created_at", "-id").first()
    if current is None or current.created_at > timezone.now() - timedelta(hours=older_than_hours):
        return 0
    n = _scope(platform).filter(signing=False, published=True).update(published=False, retired_at=timezone.now())
    if n:
        log.info("lti: retired %d tool key(s)", n)
    return n


def key_sets() -> list[Platform | None]:
    """Every key set in use: the shared one and each platform with its own."""
    return [None, *Platform.objects.filter(own_key=True).order_by("pk")]
