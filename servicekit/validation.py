"""One validator for every request body: a Struct's own constraints, then the rules it cannot say.

A body is checked field by field, so a client learns every broken field at once:

1. a missing required field is refused; a missing optional one takes the Struct's default;
2. msgspec converts the value to the field's declared type, with its constraints (bounds,
   lengths, patterns), and its message is the field's error;
3. the field's checks, the rules msgspec cannot state (at most two decimal places, plain
   decimal notation), each see the value as the client sent it and return a
   message when it breaks them.

Numbers arrive as `decode_json` reads them: a JSON number with a fraction or an exponent is
a Decimal. A whole one (`3.0`, `1e3`) counts as an integer, as JSON Schema counts it, and is
clamped beyond every bound first, so `1e999999999` never builds a billion-digit int.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

import msgspec
import msgspec.inspect

from servicekit.http import NON_BLANK_TEXT
from servicekit.problems import FieldError, ProblemError, validation_failed

S = TypeVar("S", bound=msgspec.Struct)
Check = Callable[[Any], str | None]  # a message when the value breaks the rule, else None

_BEYOND_ANY_BOUND = Decimal(2**64)


# Words for the patterns a client would not read as a rule: msgspec names the regex itself.
PATTERN_WORDS = {NON_BLANK_TEXT: "must not be blank or contain NUL characters"}


def _as_json_number(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(min(max(value, -_BEYOND_ANY_BOUND), _BEYOND_ANY_BOUND))
    return value


def _message(error: msgspec.ValidationError, kind: Any) -> str:
    text = str(error).removesuffix(" - at `$`")
    pattern = getattr(msgspec.inspect.type_info(kind), "pattern", None)
    if text.startswith("Expected `str` matching regex") and pattern in PATTERN_WORDS:
        return PATTERN_WORDS[pattern]
    return text


@dataclass(frozen=True)
class BodyValidator(Generic[S]):
    """Reads a decoded JSON body into `struct`, or refuses it naming every broken field.

    `checks` maps a field's name to the rules msgspec cannot say; `refuse` builds the
    problem from the errors (422 `validation_failed` unless a service says otherwise).
    """

    struct: type[S]
    checks: Mapping[str, Sequence[Check]] = field(default_factory=dict)
    refuse: Callable[[list[FieldError]], ProblemError] = validation_failed

    _fields: tuple[msgspec.structs.FieldInfo, ...] = field(init=False, repr=False)
    _checked: tuple[tuple[str, str], ...] = field(init=False, repr=False)  # (name, key)

    def __post_init__(self) -> None:
        fields = msgspec.structs.fields(self.struct)  # slow to ask (~0.1 ms): asked once
        unknown = set(self.checks) - {info.name for info in fields}
        if unknown:
            raise ValueError(f"{self.struct.__name__} has no field {', '.join(sorted(unknown))}")
        object.__setattr__(self, "_fields", fields)
        checked = tuple(
            (info.name, info.encode_name) for info in fields if info.name in self.checks
        )
        object.__setattr__(self, "_checked", checked)

    def __call__(self, body: Any) -> S:
        if not isinstance(body, dict):
            raise self.refuse([FieldError(field="", message="must be a JSON object")])
        try:  # the usual body: the whole Struct at once, then its checks
            whole = msgspec.convert(body, self.struct)
        except msgspec.ValidationError:
            pass
        else:
            checked = ((name, key) for name, key in self._checked if key in body)
            if not any(self._broken(name, body[key]) for name, key in checked):
                return whole
        return self._field_by_field(body)

    def _broken(self, name: str, sent: Any) -> str | None:
        return next((text for check in self.checks.get(name, ()) if (text := check(sent))), None)

    def _field_by_field(self, body: dict[str, Any]) -> S:
        """Each field alone, so that every broken one is named; refuses if any is."""
        errors: list[FieldError] = []
        values: dict[str, Any] = {}
        for info in self._fields:
            if info.encode_name not in body:
                if info.required:
                    errors.append(FieldError(field=info.encode_name, message="is required"))
                continue
            sent = body[info.encode_name]
            try:
                value = msgspec.convert(_as_json_number(sent), info.type)
            except msgspec.ValidationError as exc:
                errors.append(FieldError(field=info.encode_name, message=_message(exc, info.type)))
                continue
            if broken := self._broken(info.name, sent):
                errors.append(FieldError(field=info.encode_name, message=broken))
                continue
            values[info.name] = value
        if errors:
            raise self.refuse(errors)
        return self.struct(**values)
