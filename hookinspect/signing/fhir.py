"""HL7 FHIR notifications (lab results): detected for their event type; FHIR defines no body signature."""

from __future__ import annotations

from hookinspect.body import parse_content_type
from hookinspect.signing.base import Detection, SignedMessage

NAME = "fhir"


def detect(message: SignedMessage) -> Detection | None:
    mime = parse_content_type(message.headers.get("content-type")).mime
    doc = message.json()
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        return None
    if mime not in ("application/fhir+json", "application/json+fhir") and "meta" not in doc:
        return None
    status = doc.get("status")
    return Detection(NAME, f"{doc['resourceType']}.{status}" if isinstance(status, str) else doc["resourceType"])
