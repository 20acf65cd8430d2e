"""HL7 FHIR notifications (lab results): detected for their event type; FHIR defines no body signature."""

from __future__ import annotations

from hookinspect.body import parse_content_type
from hookinspect.signing.base import Detection, SignedMessage

NAME = "fhir"


def detect(message: SignedMessage) -> Detection | None:
    mime = parse_content_type(message.headers.get("content-type")).mime
    is_fhir_type = mime in ("application/fhir+json", "application/json+fhir")
    if not is_fhir_type and b'"resourceType"' not in message.body[:4096]:
        return None  # cheap refusal: this runs for every capture
    doc = message.json()
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        return None
    if not is_fhir_type and "meta" not in doc:
        return None
    status = doc.get("status")
    return Detection(NAME, f"{doc['resourceType']}.{status}" if isinstance(status, str) else doc["resourceType"])
