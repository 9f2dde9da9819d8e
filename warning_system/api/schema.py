"""OpenAPI post-processing: the error answers every API operation can give.

Authentication (401), scopes (403), unknown ids or pages (404) and rate
limits (429) come from shared machinery, not from each view, so they are
documented once here for every operation that does not describe them
itself. Integrators and the schema fuzzer then see every status the API
really returns.
"""
from __future__ import annotations

ERROR_SCHEMA = "Error"
COMMON = {
    "400": "Invalid parameters or body; the answer names each bad field.",
    "401": "Missing, unknown, revoked or expired API key.",
    "403": "The key lacks the scope, or may not use this sensor.",
    "404": "No such object, or no such page.",
    "429": "Rate limit exceeded; see Retry-After.",
}
PUBLIC = {"/api/v1/health", "/api/v1/schema/"}


def add_common_error_responses(result, generator, request, public):
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(ERROR_SCHEMA, {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    })
    error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
    # Field errors come as {"field": ["message", ...]} (filters) or {"detail", "errors"} (items).
    field_errors = {"application/json": {"schema": {"type": "object"}}}
    for path, operations in result.get("paths", {}).items():
        if path in PUBLIC:
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, description in COMMON.items():
                content = field_errors if code == "400" else error
                responses.setdefault(code, {"description": description, "content": content})
    return result
