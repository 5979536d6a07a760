"""Settings read from environment variables, one reader for every service.

A settings dataclass names, on each field, the variable it is read from and nothing more:

    port: int = setting(3001, "ORDER_API_PORT")

`read(Settings, os.environ)` then fills each such field from its variable when it is set
(and not blank), parsed by the field's type, and leaves the default otherwise. The default
is written once, on the field.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
S = TypeVar("S")

_VARIABLE, _PARSE, _KEEP_SPACES = "env", "parse", "keep_spaces"


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used."""


def setting(
    default: T,
    variable: str,
    *,
    parse: Callable[[str], T] | None = None,
    secret: bool = False,
    keep_spaces: bool = False,
) -> T:
    """A settings field read from `variable`; `parse` when its type alone does not say how
    (it raises SettingsError for a value it refuses); a `secret` is never printed."""
    metadata = {_VARIABLE: variable, _PARSE: parse, _KEEP_SPACES: keep_spaces}
    field: T = dataclasses.field(default=default, repr=not secret, metadata=metadata)
    return field


def _whole(variable: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{variable} must be a whole number, not {raw!r}") from None


def _number(variable: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{variable} must be a number, not {raw!r}") from None


_BY_TYPE: dict[Any, Callable[[str, str], Any]] = {
    int: _whole,
    float: _number,
    str: lambda _, raw: raw,
}


def read(cls: type[S], env: Mapping[str, str], **given: Any) -> S:
    """`cls` from `env`: every field that names a variable, from it where it is set; the
    fields in `given` as given (settings of settings, such as the database's)."""
    types = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        variable = field.metadata.get(_VARIABLE)
        if variable is None or field.name in given:
            continue
        raw = env.get(variable, "")
        if not raw.strip():
            continue  # unset or blank: the default
        if not field.metadata[_KEEP_SPACES]:
            raw = raw.strip()
        parse = field.metadata[_PARSE]
        values[field.name] = parse(raw) if parse else _BY_TYPE[types[field.name]](variable, raw)
    return cls(**given, **values)


def variables(cls: type[Any]) -> set[str]:
    """The environment variables a settings class reads, its nested settings' included."""
    names: set[str] = set()
    types = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if variable := field.metadata.get(_VARIABLE):
            names.add(variable)
        elif dataclasses.is_dataclass(types[field.name]):
            names |= variables(types[field.name])
    return names


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    """One variable read alone, outside a settings class (blank means unset)."""
    value = env.get(name, "").strip()
    return value or default
