"""The provider → operation → parameter catalogue, declared once.

It drives slot validation (CLI exit 2 / HTTP 422 with per-field messages), `photoslot providers`
and `GET /api/providers`. A slot's `settings_json` is validated against it:

    {"prompt": "...", "params": {name: value}, "templates": {role: template_id},
     "output_format": "jpeg" | "png" | "webp"}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OUTPUT_FORMATS = ("jpeg", "png", "webp")


@dataclass(frozen=True)
class Param:
    type: str  # "int" | "float" | "str" | "bool"
    description: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False

    def as_dict(self) -> dict:
        out = {"type": self.type, "description": self.description, "required": self.required}
        if self.default is not None:
            out["default"] = self.default
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass(frozen=True)
class Operation:
    id: str
    name: str
    description: str
    prompt_required: bool = True
    needs: tuple[str, ...] = ()  # template roles
    params: dict[str, Param] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "prompt_required": self.prompt_required,
            "needs": list(self.needs),
            "parameters": {k: p.as_dict() for k, p in self.params.items()},
        }


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    input_mimes: tuple[str, ...]
    max_input_mb: int
    operations: dict[str, Operation]

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "input_mimes": list(self.input_mimes),
            "max_input_mb": self.max_input_mb,
            "operations": [op.as_dict() for op in self.operations.values()],
        }


GEMINI = Provider(
    id="gemini",
    name="Google Gemini",
    input_mimes=("image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"),
    max_input_mb=20,
    operations={
        "image_edit": Operation(
            id="image_edit",
            name="Edit by prompt",
            description="The photo is edited as the prompt says (background, style, lighting …).",
            params={
                "temperature": Param("float", "sampling temperature; lower is more faithful", None, 0.0, 2.0),
                "seed": Param("int", "fixed seed for repeatable results", None, 0, 2**31 - 1),
            },
        ),
    },
)

CATALOGUE: dict[str, Provider] = {p.id: p for p in (GEMINI,)}


def as_list() -> list[dict]:
    return [p.as_dict() for p in CATALOGUE.values()]


def _check_value(name: str, spec: Param, value: Any) -> str | None:
    if spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer"
    elif spec.type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number"
    elif spec.type == "str":
        if not isinstance(value, str):
            return "must be a string"
    elif spec.type == "bool":
        if not isinstance(value, bool):
            return "must be true or false"
    if spec.minimum is not None and value < spec.minimum:
        return f"must be at least {spec.minimum}"
    if spec.maximum is not None and value > spec.maximum:
        return f"must be at most {spec.maximum}"
    return None


def coerce_param(provider_id: str, operation_id: str, name: str, text: str) -> Any:
    """Turn a CLI `--param KEY=VALUE` string into the catalogue's type (unknown keys stay text)."""
    try:
        spec = CATALOGUE[provider_id].operations[operation_id].params[name]
    except KeyError:
        return text
    try:
        if spec.type == "int":
            return int(text)
        if spec.type == "float":
            return float(text)
        if spec.type == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
    except ValueError:
        pass
    return text


def validate(provider_id: Any, operation_id: Any, settings: Any) -> dict[str, str]:
    """Per-field error messages; empty means the combination is valid."""
    errors: dict[str, str] = {}
    provider = CATALOGUE.get(provider_id) if isinstance(provider_id, str) else None
    if provider is None:
        errors["provider_id"] = f"unknown provider {provider_id!r}; one of: {', '.join(CATALOGUE)}"
        return errors
    operation = provider.operations.get(operation_id) if isinstance(operation_id, str) else None
    if operation is None:
        errors["operation_id"] = (
            f"unknown operation {operation_id!r} for {provider.id}; one of: {', '.join(provider.operations)}"
        )
        return errors
    if not isinstance(settings, dict):
        errors["settings_json"] = "must be an object"
        return errors
    allowed = {"prompt", "params", "templates", "output_format"}
    for key in settings:
        if key not in allowed:
            errors[f"settings_json.{key}"] = f"unknown setting; allowed: {', '.join(sorted(allowed))}"
    prompt = settings.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        errors["settings_json.prompt"] = "must be a string"
    elif operation.prompt_required and not (prompt or "").strip():
        errors["settings_json.prompt"] = f"a prompt is required for {provider.id}/{operation.id}"
    elif prompt and len(prompt) > 4000:
        errors["settings_json.prompt"] = "must be at most 4000 characters"
    fmt = settings.get("output_format", "jpeg")
    if fmt not in OUTPUT_FORMATS:
        errors["settings_json.output_format"] = f"must be one of: {', '.join(OUTPUT_FORMATS)}"
    params = settings.get("params", {})
    if not isinstance(params, dict):
        errors["settings_json.params"] = "must be an object"
    else:
        for name, value in params.items():
            spec = operation.params.get(name)
            if spec is None:
                known = ", ".join(operation.params) or "none"
                errors[f"settings_json.params.{name}"] = f"unknown parameter for {operation.id}; known: {known}"
                continue
            problem = _check_value(name, spec, value)
            if problem:
                errors[f"settings_json.params.{name}"] = problem
        for name, spec in operation.params.items():
            if spec.required and name not in params:
                errors[f"settings_json.params.{name}"] = "is required"
    templates = settings.get("templates", {})
    if not isinstance(templates, dict):
        errors["settings_json.templates"] = "must be an object"
    else:
        for role in templates:
            if role not in operation.needs:
                errors[f"settings_json.templates.{role}"] = f"{operation.id} takes no {role!r} template"
        for role in operation.needs:
            if not templates.get(role):
                errors[f"settings_json.templates.{role}"] = f"{operation.id} needs a {role!r} template"
    return errors
