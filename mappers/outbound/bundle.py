"""The resources handed to the renderer, and the references between them.

Input is one resource or a Bundle of any type. A Reference resolves by the entry's
``fullUrl`` (``urn:uuid:...``, or an absolute URL) or by ``ResourceType/id``.
"""

from __future__ import annotations

from typing import Any


class BundleIndex:
    """Every resource of the input, in order, findable by reference."""

    def __init__(self, resource: dict[str, Any]) -> None:
        self.resources: list[dict[str, Any]] = []
        self._by_url: dict[str, dict[str, Any]] = {}
        if resource.get("resourceType") == "Bundle":
            for entry in resource.get("entry") or []:
                res = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(res, dict) and res.get("resourceType"):
                    self._add(res, entry.get("fullUrl"))
        else:
            self._add(resource, None)

    def _add(self, res: dict[str, Any], full_url: Any) -> None:
        self.resources.append(res)
        if isinstance(full_url, str) and full_url:
            self._by_url.setdefault(full_url, res)
        if res.get("id"):
            self._by_url.setdefault(f"{res['resourceType']}/{res['id']}", res)

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        """The resources of one type, in Bundle order."""
        return [r for r in self.resources if r.get("resourceType") == resource_type]

    def resolve(self, ref: dict[str, Any]) -> dict[str, Any] | None:
        """The resource a Reference names, when it is in the input."""
        target = ref.get("reference")
        if not isinstance(target, str) or not target:
            return None
        found = self._by_url.get(target)
        if found is None and "/" in target and not target.startswith("urn:"):
            parts = target.rstrip("/").split("/")
            if len(parts) >= 2:  # an absolute URL: its last ResourceType/id
                found = self._by_url.get(f"{parts[-2]}/{parts[-1]}")
                if found is None and len(parts) >= 4 and parts[-2] == "_history":
                    found = self._by_url.get(f"{parts[-4]}/{parts[-3]}")
        return found

    def resolve_all(self, values: list[Any]) -> list[Any]:
        """``values`` with each Reference that resolves replaced by its resource."""
        out = []
        for value in values:
            if isinstance(value, dict) and "reference" in value and "resourceType" not in value:
                found = self.resolve(value)
                out.append(found if found is not None else value)
            else:
                out.append(value)
        return out

    def members(self, observation: dict[str, Any], seen: set[int]) -> list[dict[str, Any]]:
        """An Observation and, depth first, the members (``hasMember``) it groups."""
        if id(observation) in seen:
            return []
        seen.add(id(observation))
        out = [observation]
        for ref in observation.get("hasMember") or []:
            found = self.resolve(ref) if isinstance(ref, dict) else None
            if found is not None and found.get("resourceType") == "Observation":
                out.extend(self.members(found, seen))
        return out


SUBJECT_ELEMENTS = ("subject", "patient")


def patient_of(index: BundleIndex, focus: dict[str, Any]) -> dict[str, Any] | None:
    """The Patient a resource is about: its subject/patient/participant in the Bundle, else
    the Bundle's only Patient, else one made of the reference's identifier (no id)."""
    refs: list[dict[str, Any]] = []
    if focus.get("resourceType") == "Patient":
        return focus
    for name in SUBJECT_ELEMENTS:
        if isinstance(focus.get(name), dict):
            refs.append(focus[name])
    for part in focus.get("participant") or []:
        actor = part.get("actor") if isinstance(part, dict) else None
        if isinstance(actor, dict):
            refs.append(actor)
    for ref in refs:
        found = index.resolve(ref)
        if found is not None and found.get("resourceType") == "Patient":
            return found
    patients = index.of_type("Patient")
    if len(patients) == 1 and not any(index.resolve(r) for r in refs):
        return patients[0]
    for ref in refs:
        ident = ref.get("identifier")
        if isinstance(ident, dict) and ident.get("value") and (
                ref.get("type") in (None, "Patient")
                and str(ref.get("reference") or "Patient/").startswith("Patient/")):
            made: dict[str, Any] = {"resourceType": "Patient", "identifier": [ident]}
            target = ref.get("reference")
            if isinstance(target, str) and target.startswith("Patient/"):
                made["id"] = target.split("/", 1)[1]
            return made
    return None


def encounter_of(index: BundleIndex, focus: dict[str, Any]) -> dict[str, Any] | None:
    """The Encounter a resource belongs to, else the Bundle's only Encounter."""
    refs: list[Any] = [focus.get("encounter")]
    context = focus.get("context")
    if isinstance(context, dict):
        refs.extend(context.get("encounter") or [])
    for ref in refs:
        found = index.resolve(ref) if isinstance(ref, dict) else None
        if found is not None and found.get("resourceType") == "Encounter":
            return found
    encounters = index.of_type("Encounter")
    return encounters[0] if len(encounters) == 1 else None
