"""Deep Linking response: the resource link (with its gradebook line item) an instructor picked."""

from __future__ import annotations

from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.lineitem import LineItem

from kdgrade.lti.claims import ASSIGNMENT_CUSTOM_PARAM
from kdgrade.lti.models import LaunchSession
from scoring.models import Assignment


def response_form(session: LaunchSession, assignment: Assignment, launch_url: str) -> tuple[str, str]:
    """(deep_link_return_url, signed JWT) to auto-POST back to the platform, signed with the tool key."""
    item = assignment.item
    line_item = (LineItem().set_label(assignment.title).set_score_maximum(float(item.score_max - item.score_min))
                 .set_resource_id(f"kdgrade-assignment-{assignment.pk}").set_tag("kdgrade"))
    resource = (DeepLinkResource().set_type("ltiResourceLink").set_title(assignment.title).set_url(launch_url)
                .set_custom_params({ASSIGNMENT_CUSTOM_PARAM: str(assignment.pk)}).set_lineitem(line_item))
    settings = dict(session.deep_link_settings)
    deep_link = DeepLink(session.platform.to_registration(), session.deployment_id, settings)
    return settings["deep_link_return_url"], deep_link.get_response_jwt([resource])
