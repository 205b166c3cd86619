"""How a YAML value or a `section.key=value` override string becomes a typed config value, and how ranges are checked.

Types come from the dataclass annotations in affectgpt.config: Literal choices (checked, with a "did you
mean"), bool, int (never silently truncating 2.5), float, str, lists and mappings (parsed as YAML), Optional.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot be applied; the message says which key and why."""


def suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else f" Valid keys: {', '.join(sorted(options))}."


def choice_error(key: str, value: Any, choices: tuple[Any, ...]) -> str:
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{key}: {value!r} is not one of {', '.join(map(str, choices))}.{hint}"


def convert(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML value or an override string to the field's declared type."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        text = "" if value is None else str(value).strip()
        if text not in choices:
            raise ConfigError(choice_error(key, value, choices))
        return text
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return convert(value, options[0], key)
    if isinstance(value, str) and (origin in (list, dict) or annotation in (list, dict)):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"{key}: cannot parse {value!r} as {annotation}: {err}") from err
    if origin is list or annotation is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_type,) = typing.get_args(annotation) or (Any,)
        return [v if item_type is Any else convert(v, item_type, key) for v in value]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
        try:
            number = float(value) if annotation is float else _to_int(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}") from err
        return number
    if annotation is str:
        return "" if value is None else str(value)
    return value


def _to_int(value: Any) -> int:
    """int, accepting "1e3" or 1000.0 but never silently truncating 2.5."""
    number = float(value) if isinstance(value, (str, float)) else value
    if isinstance(number, float) and not number.is_integer():
        raise ValueError(value)
    return int(number)


class Checks:
    """Collects "section.key: must be ..., got ..." problems; every section reports all of them at once."""

    def __init__(self, section: str, obj: Any):
        self.section, self.obj, self.errors = section, obj, []

    def at_least(self, low: float, *names: str) -> None:
        for name in names:
            value = getattr(self.obj, name)
            if not value >= low:
                self.errors.append(f"{self.section}.{name}: must be >= {low}, got {value!r}")

    def positive(self, *names: str) -> None:
        for name in names:
            value = getattr(self.obj, name)
            if not value > 0:
                self.errors.append(f"{self.section}.{name}: must be > 0, got {value!r}")

    def that(self, ok: bool, message: str) -> None:
        if not ok:
            self.errors.append(f"{self.section}.{message}")
