"""The provider → operation → parameter catalogue, declared once.

It drives slot validation (CLI exit 2 / HTTP 422 with per-field messages), `photoslot providers`
and `GET /api/providers`. A slot's `settings_json` is validated against it:

    {"prompt": "...", "params": {name: value}, "templates": {role: template_id},
     "output_format": "jpeg" | "png" | "webp"}
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

OUTPUT_FORMATS = ("jpeg", "png", "webp")
PROMPT_MAX_CHARS = 4000  # a longer prompt is refused with a message, never cut


@dataclass(frozen=True)
class Param:
    type: str  # "int" | "float" | "str" | "bool"
    description: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    max_length: int | None = None  # for "str"
    max_words: int | None = None  # for "str": a limit the provider counts in words
    choices: tuple[str, ...] | None = None  # for "str": the only values the provider knows

    def as_dict(self) -> dict:
        out = {"type": self.type, "description": self.description, "required": self.required}
        if self.default is not None:
            out["default"] = self.default
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.max_length is not None:
            out["max_length"] = self.max_length
        if self.max_words is not None:
            out["max_words"] = self.max_words
        if self.choices is not None:
            out["choices"] = list(self.choices)
        return out


@dataclass(frozen=True)
class Operation:
    id: str
    name: str
    description: str
    prompt_required: bool = True
    needs: tuple[str, ...] = ()  # template roles that must be bound
    optional: tuple[str, ...] = ()  # template roles that may be bound
    params: dict[str, Param] = field(default_factory=dict)
    uses_prompt: bool = True  # False: the provider has no prompt field for this operation

    @property
    def roles(self) -> tuple[str, ...]:
        return self.needs + self.optional

    def defaults(self) -> dict:
        return {k: p.default for k, p in self.params.items() if p.default is not None}

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "prompt_required": self.prompt_required,
            "uses_prompt": self.uses_prompt,
            "needs": list(self.needs),
            "optional_templates": list(self.optional),
            "parameters": {k: p.as_dict() for k, p in self.params.items()},
        }


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    input_mimes: tuple[str, ...]
    max_input_mb: int
    operations: dict[str, Operation]

    @property
    def max_input_bytes(self) -> int:
        return self.max_input_mb * 1024 * 1024

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "input_mimes": list(self.input_mimes),
            "max_input_mb": self.max_input_mb,
            "operations": [op.as_dict() for op in self.operations.values()],
        }


# Gemini's image models, as Google's image-generation page lists them: the output sizes they offer
# (gemini-2.5-flash-image answers at one size, about 1 MP; gemini-3-pro-image-preview at 1K, 2K or 4K)
# and the aspect ratios both take (generationConfig.imageConfig.aspectRatio).
GEMINI_IMAGE_MODELS: dict[str, tuple[str, ...]] = {
    "gemini-2.5-flash-image": (),
    "gemini-3-pro-image-preview": ("1K", "2K", "4K"),
}
DEFAULT_GEMINI_MODEL = "gemini-2.5-flash-image"
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGE_SIZES = ("1K", "2K", "4K")


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The listed aspect ratio closest to a photo of this (upright) size, compared on a log scale so
    that 3:2 and 2:3 are as far from 1:1 as each other."""
    ratio = math.log(width / height)

    def distance(name: str) -> float:
        w, h = (int(x) for x in name.split(":"))
        return abs(math.log(w / h) - ratio)

    return min(ASPECT_RATIOS, key=distance)


def image_sizes(model: str | None) -> tuple[str, ...]:
    """The output sizes a Gemini model offers (empty: one size only)."""
    return GEMINI_IMAGE_MODELS.get(model or "", ())


_GEMINI_PARAMS = {
    "temperature": Param("float", "sampling temperature; lower is more faithful", None, 0.0, 2.0),
    "seed": Param("int", "fixed seed for repeatable results", None, 0, 2**31 - 1),
    "model": Param("str", "the Gemini image model (empty: the studio's default model, set in its configuration)", None,
                   choices=tuple(GEMINI_IMAGE_MODELS)),
    "aspect_ratio": Param("str", "shape of the result (unset: the one nearest to the booth photo)", None,
                          choices=ASPECT_RATIOS),
    "image_size": Param("str", "size of the result, for a model that offers sizes (gemini-3-pro-image-preview)",
                        None, choices=IMAGE_SIZES),
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
            params=dict(_GEMINI_PARAMS),
        ),
        "style_transfer": Operation(
            id="style_transfer",
            name="Style transfer",
            description="The photo is redrawn in the look of the style template, guided by the prompt.",
            needs=("style",),
            params=dict(_GEMINI_PARAMS),
        ),
        "identity_transfer": Operation(
            id="identity_transfer",
            name="Identity transfer / combine",
            description="The face or person of the face template is put into the photo as the prompt says; "
                        "an optional style template sets the look.",
            needs=("face",),
            optional=("style",),
            params=dict(_GEMINI_PARAMS),
        ),
    },
)

TURBOTEXT = Provider(
    id="turbotext",
    name="Turbotext",
    input_mimes=("image/jpeg", "image/png", "image/webp"),
    max_input_mb=15,
    operations={
        "image_edit": Operation(
            id="image_edit",
            name="Edit by prompt (image2image)",
            description="/api_ai/generate_image2image: the photo is redrawn from the prompt (content).",
            params={
                "strength": Param("int", "how far the result may move away from the photo (0 = keep it)", 40, 0, 80),
                # As Turbotext documents generate_image2image: seed 1–10^10 (random when not sent),
                # the prompt's language `ru` unless told, user_id 1; the defaults are sent.
                "seed": Param("int", "fixed seed for repeatable results (random when unset)", None, 1, 10 ** 10),
                "scale": Param("float", "how strictly the prompt is followed", 7.5, 0.1, 20.0),
                "negative_prompt": Param("str", "what must not appear in the result (Turbotext reads at most 80 words)",
                                         None, max_length=1000, max_words=80),
                "original_language": Param("str", "language the prompt is written in (e.g. en, ru)", "ru",
                                           max_length=8),
                "user_id": Param("int", "Turbotext's user id for the request", 1, 1, 2 ** 31 - 1),
            },
        ),
        "style_transfer": Operation(
            id="style_transfer",
            name="Style transfer (mix images)",
            description="/api_ai/mix_images: the photo (url_image_target) takes the look of the style template (url); "
                        "the prompt (content) is optional.",
            prompt_required=False,
            needs=("style",),
        ),
        "identity_transfer": Operation(
            id="identity_transfer",
            name="Face swap (deepfake photo)",
            description="/api_ai/deepfake_photo: the face of the face template (url_image_target) is put onto the "
                        "person in the photo (url). No prompt.",
            prompt_required=False,
            uses_prompt=False,
            needs=("face",),
            params={
                "face_restore": Param("bool", "let Turbotext sharpen the swapped face (sent as True/False)", False),
            },
        ),
    },
)

CATALOGUE: dict[str, Provider] = {p.id: p for p in (GEMINI, TURBOTEXT)}


def as_list() -> list[dict]:
    return [p.as_dict() for p in CATALOGUE.values()]


def _check_value(name: str, spec: Param, value: Any) -> str | None:
    if spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
    elif spec.type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if isinstance(value, float) and not math.isfinite(value):  # NaN passes every bound; jsonb refuses it
            return "must be a finite number"
    elif spec.type == "str":
        if not isinstance(value, str):
            return "must be a string"
        if spec.max_length is not None and len(value) > spec.max_length:
            return f"must be at most {spec.max_length} characters"
        if spec.max_words is not None and len(value.split()) > spec.max_words:
            return f"must be at most {spec.max_words} words"
        if spec.choices is not None and value not in spec.choices:
            return f"must be one of: {', '.join(spec.choices)}"
        return None
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
    elif not operation.uses_prompt and (prompt or "").strip():
        errors["settings_json.prompt"] = f"{provider.id}/{operation.id} takes no prompt"
    elif operation.prompt_required and not (prompt or "").strip():
        errors["settings_json.prompt"] = f"a prompt is required for {provider.id}/{operation.id}"
    elif prompt and len(prompt) > PROMPT_MAX_CHARS:
        errors["settings_json.prompt"] = f"must be at most {PROMPT_MAX_CHARS} characters"
    fmt = settings.get("output_format")
    if fmt is not None and fmt not in OUTPUT_FORMATS:
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
        size = params.get("image_size")
        if "image_size" in operation.params and size is not None and "settings_json.params.image_size" not in errors:
            model = params.get("model")
            if size not in image_sizes(model if isinstance(model, str) else None):
                sized = ", ".join(m for m, sizes in GEMINI_IMAGE_MODELS.items() if sizes)
                errors["settings_json.params.image_size"] = (
                    f"needs a model that offers sizes ({sized}); set model too" if not model else
                    f"{model} answers at one size; image_size needs {sized}")
    templates = settings.get("templates", {})
    if not isinstance(templates, dict):
        errors["settings_json.templates"] = "must be an object"
    else:
        for role, ref in templates.items():
            if role not in operation.roles:
                takes = ", ".join(operation.roles) or "none"
                errors[f"settings_json.templates.{role}"] = (
                    f"{provider.id}/{operation.id} takes no {role!r} template; template roles: {takes}")
            elif ref and not _is_uuid(ref):
                errors[f"settings_json.templates.{role}"] = "must be a template id (UUID); see `photoslot template list`"
        for role in operation.needs:
            if not templates.get(role):
                errors[f"settings_json.templates.{role}"] = (
                    f"{provider.id}/{operation.id} needs a {role!r} template (slot set --template {role}=PATH_OR_ID)")
    return errors


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def get_operation(provider_id: str, operation_id: str) -> Operation:
    return CATALOGUE[provider_id].operations[operation_id]


def effective_params(provider_id: str, operation_id: str, params: dict | None) -> dict:
    """The slot's parameters over the catalogue's defaults: what is sent to the provider."""
    return {**get_operation(provider_id, operation_id).defaults(), **(params or {})}


def check_input(provider_id: str, mime: str | None, size_bytes: int) -> tuple[int, str, str] | None:
    """(HTTP status, reason, detail) when the provider cannot take this input; None when it can.

    Used by ingest before anything is queued, and by template registration for a slot.
    """
    provider = CATALOGUE.get(provider_id)
    if provider is None:
        return None
    if mime not in provider.input_mimes:
        kinds = ", ".join(m.split("/", 1)[1].upper() for m in provider.input_mimes)
        return 415, "unsupported_media_type", f"{provider.name} accepts {kinds} images, not {mime or 'this file'}"
    if size_bytes > provider.max_input_bytes:
        return 413, "payload_too_large", f"{provider.name} accepts images up to {provider.max_input_mb} MB"
    return None


def max_input_bytes(provider_id: str) -> int | None:
    provider = CATALOGUE.get(provider_id)
    return provider.max_input_bytes if provider else None


def cli_help() -> dict[str, str]:
    """Help texts for `slot set`, generated from the catalogue so they never drift from it."""
    ops = "; ".join(f"{p.id}: {', '.join(p.operations)}" for p in CATALOGUE.values())
    params = "; ".join(
        f"{p.id}/{o.id}: {', '.join(o.params)}" for p in CATALOGUE.values() for o in p.operations.values() if o.params)
    roles = "; ".join(
        f"{p.id}/{o.id}: {', '.join(o.needs)}{' (+' + ', '.join(o.optional) + ')' if o.optional else ''}"
        for p in CATALOGUE.values() for o in p.operations.values() if o.roles)
    return {
        "provider": f"one of: {', '.join(CATALOGUE)}",
        "operation": f"operation id ({ops})",
        "param": f"KEY=VALUE operation parameter, repeatable ({params}); see `photoslot providers`",
        "template": f"ROLE=PATH_OR_ID, repeatable; a PATH is registered as template media ({roles})",
    }
