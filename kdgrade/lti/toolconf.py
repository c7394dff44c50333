"""pylti1p3's tool configuration, read from the Platform and Deployment tables."""

from __future__ import annotations

from typing import Any

from pylti1p3.deployment import Deployment as PyltiDeployment
from pylti1p3.registration import Registration
from pylti1p3.tool_config.abstract import ToolConfAbstract

from kdgrade.lti.models import Deployment, Platform


class DatabaseToolConf(ToolConfAbstract):
    """pylti1p3 tool configuration read from the database; remembers the platform it resolved."""

    def __init__(self) -> None:
        self.platform: Platform | None = None

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> Registration | None:
        platforms = list(Platform.objects.filter(issuer=iss, is_active=True)[:2])
        if len(platforms) != 1:
            return None
        self.platform = platforms[0]
        return self.platform.to_registration()

    def find_registration_by_params(self, iss: str, client_id: str, *args: Any, **kwargs: Any) -> Registration | None:
        if not client_id:
            return self.find_registration_by_issuer(iss)
        self.platform = Platform.objects.filter(issuer=iss, client_id=client_id, is_active=True).first()
        return self.platform.to_registration() if self.platform else None

    def find_deployment(self, iss: str, deployment_id: str) -> PyltiDeployment | None:
        return None

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str, *args: Any, **kwargs: Any
    ) -> PyltiDeployment | None:
        if Deployment.objects.filter(
            platform__issuer=iss, platform__client_id=client_id, platform__is_active=True,
            deployment_id=deployment_id, is_active=True,
        ).exists():
            return PyltiDeployment().set_deployment_id(deployment_id)
        return None
