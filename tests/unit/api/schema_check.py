"""A JSON Schema check for the subset the API's schemas use (``jsonschema`` is not a
dependency): type (one or a list), properties, required, additionalProperties (bool), items,
enum, pattern, minimum, maximum, and local ``$ref`` into the document's components."""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_KNOWN = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "pattern",
    "minimum", "maximum", "$ref", "default", "contentEncoding", "format", "description",
}  # fmt: skip


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def schema_errors(
    value: Any, schema: dict[str, Any], document: dict[str, Any] | None = None, path: str = "$"
) -> list[str]:
    """Every way ``value`` breaks ``schema`` (empty when it validates)."""
    unknown = set(schema) - _KNOWN
    assert not unknown, f"{path}: schema keyword(s) {unknown} not supported by this checker"
    if "$ref" in schema:
        assert document is not None, "a $ref needs the document"
        target: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return schema_errors(value, target, document, path)
    errors: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, name) for name in names):
            return [f"{path}: {value!r:.60} is not of type {names}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r:.60} not in {schema['enum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r:.60} does not match {schema['pattern']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}: missing {name!r}")
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(item, properties[name], document, f"{path}.{name}")
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{path}: unexpected {name!r}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], document, f"{path}[{index}]")
    return errors
