"""Full FHIR validation of a Bundle with the fhir.resources R4B models (opt-in: ~ms each).

R4B is wire-compatible with R4 for the resources we emit (Patient, Encounter,
MessageHeader, Provenance).
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from mappers.errors import InvalidOutput

_MAX_LISTED = 5


def validate_bundle(bundle: dict[str, Any]) -> None:
    """Raise ``InvalidOutput`` naming each invalid element when the models refuse ``bundle``."""
    try:
        Bundle.model_validate(bundle)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        lines = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                 for err in errors[:_MAX_LISTED]]
        more = len(errors) - len(lines)
        if more:
            lines.append(f"... and {more} more")
        raise InvalidOutput("Bundle is not valid FHIR R4B: " + "; ".join(lines)) from None
