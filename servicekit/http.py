"""HTTP helpers every API shares: strict JSON bodies, page limits, Link headers, OpenAPI bodies."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request
from litestar.openapi.spec import OpenAPIType, Operation
from litestar.params import Parameter

from servicekit.problems import FieldError, ProblemError, validation_failed

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_BIGINT = 2**63 - 1  # the widest whole number a Postgres column of ours holds

# JSON numbers with a fraction are read as Decimal from their text: no float drift, ever.
_decoder = msgspec.json.Decoder(float_hook=Decimal)

# Whitespace as str.strip() and str.isspace() see it, spelled out: a JSON Schema \s is
# ECMAScript's, which leaves out U+0085 and U+001C-U+001F, so with \s a schema-driven
# client took "\u0085" for a valid reason that the server refused as blank.
# servicekit/tests/test_http.py checks the list against str.isspace().
WHITESPACE = (
    r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a"
    r"\u2028\u2029\u202f\u205f\u3000"
)
# A JSON Schema pattern for free text: some character that is not whitespace, and no NUL.
NON_BLANK_TEXT = rf"^[^\u0000]*[^{WHITESPACE}\u0000][^\u0000]*$"


def decode_json(body: bytes) -> Any:
    """Parse a request body; whatever bytes arrive, what cannot be read is a 400, never a 500.

    msgspec leaves two kinds of unreadable body to Python: a string whose bytes are not
    UTF-8 (UnicodeDecodeError) and nesting deeper than the interpreter's recursion limit
    (RecursionError, raised before anything is built, so nothing is left half-done).
    """
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise malformed_json(str(exc)) from None
    except RecursionError:
        raise malformed_json("the document is nested too deeply") from None


def malformed_json(detail: str) -> ProblemError:
    return ProblemError(400, "malformed_json", "The request body is not valid JSON", detail)


def ascii_digits(text: str) -> bool:
    """Only 0-9: str.isdigit() also accepts digits such as '²' that int() refuses."""
    return text.isascii() and text.isdigit()


def parse_whole(text: str, high: int = MAX_BIGINT) -> int | None:
    """A whole number in ASCII digits, from 0 to `high`; None for anything else.

    The length is checked before int() reads the digits, so a 60,000-digit number costs
    nothing and never reaches int()'s own limit (a ValueError, and so a 500).
    """
    if not ascii_digits(text):  # "" included: an empty parameter is no number
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(high)):
        return None
    value = int(digits)
    return value if value <= high else None


def whole_param(name: str, raw: str | None, *, default: int, low: int, high: int) -> int:
    """A whole-number query parameter within [low, high]; 422 naming it otherwise."""
    if raw is None:  # absent; present but empty (`?limit=`) is refused like any non-number
        return default
    value = parse_whole(raw, high)
    if value is None or value < low:
        message = f"must be a whole number from {low} to {high}"
        raise validation_failed([FieldError(field=name, message=message)])
    return value


def whole_number_query(description: str, low: int, high: int) -> Any:
    """A query parameter read as a string (so this code, not the framework, answers a bad
    one with a 422) and documented as what it is: a whole number within [low, high]."""
    return Parameter(
        description=description,
        schema_extra={"one_of": None, "type": OpenAPIType.INTEGER, "minimum": low, "maximum": high},
    )


def inline_schema(struct: type[Any]) -> dict[str, Any]:
    """A Struct's JSON Schema with no references, for a request body documented by hand."""
    (_,), components = msgspec.json.schema_components([struct])
    schema: dict[str, Any] = components[struct.__name__]
    return schema


def page_limit(raw: str | None) -> int:
    """The `limit` query parameter: 1..MAX_LIMIT, DEFAULT_LIMIT when absent."""
    return whole_param("limit", raw, default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)


def encode_cursor(position: int) -> str:
    """An opaque cursor for a keyset position (clients must not build their own)."""
    return base64.urlsafe_b64encode(f"p{position}".encode()).decode().rstrip("=")


def cursor_param(raw: str | None) -> int | None:
    """The position behind a `cursor` query parameter; 422 for one we did not hand out."""
    if not raw:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        position = parse_whole(text[1:]) if text.startswith("p") else None
        if position is not None:
            return position
    except (ValueError, binascii.Error):  # not base64, or not UTF-8 beneath it
        pass
    raise validation_failed([FieldError(field="cursor", message="is not a cursor we handed out")])


def next_link(request: Request[Any, Any, Any], cursor: str | None) -> dict[str, str]:
    """A `Link: <...>; rel="next"` header pointing at the page after this one, if any."""
    if cursor is None:
        return {}
    params = {k: v for k, v in request.query_params.items() if k != "cursor"}
    params["cursor"] = cursor
    return {"Link": f'<{request.url.path}?{urlencode(params)}>; rel="next"'}


def json_body_operation(schema: dict[str, Any], *, required: bool = True) -> type[Operation]:
    """An OpenAPI Operation that documents a JSON request body the handler parses itself.

    Handlers that must tell malformed JSON (400) from broken rules (422) read the raw body;
    this puts the body's JSON Schema back into the OpenAPI document.
    """

    @dataclass
    class JsonBodyOperation(Operation):
        def to_schema(self) -> dict[str, Any]:
            document = super().to_schema()
            document["requestBody"] = {
                "required": required,
                "content": {"application/json": {"schema": schema}},
            }
            return document

    return JsonBodyOperation


def tagged_items_operation(tags: list[str], status: int = 200) -> type[Operation]:
    """An OpenAPI Operation whose array response says which member of its oneOf each item is.

    A list of `Envelope[A] | Envelope[B] | ...` is documented as oneOf the envelope schemas,
    but they share one shape (`type` is a plain string), so an item matches several of them
    and breaks oneOf. Each member is tied here to the value of `type` that names it; `tags`
    follows the order of the union.
    """

    @dataclass
    class TaggedItemsOperation(Operation):
        def to_schema(self) -> dict[str, Any]:
            document = super().to_schema()
            content = document["responses"][str(status)]["content"]["application/json"]
            items = content["schema"]["items"]
            items["oneOf"] = [
                {"allOf": [member, {"properties": {"type": {"const": tag}}}]}
                for member, tag in zip(items["oneOf"], tags, strict=True)
            ]
            return document

    return TaggedItemsOperation
