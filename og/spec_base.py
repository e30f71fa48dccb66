"""The grammar of spec ids and the base of every component spec.

A component spec is written ``name[:variant][(key=value,...)]``: only fields that differ from
their defaults are written, values are typed by the field's default (bool, int, float, str,
None), and a segmenter's own knobs travel in ``options``. `og.spec` builds the concrete specs
and the `ModelSpec` on top of `ComponentSpec`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from og.registry import Registry

Value = str | int | float | bool | None


class SpecError(ValueError):
    """A spec or spec id that cannot be used; the message names the value and the fix."""


def format_value(v: Value) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def parse_value(text: str) -> Value:
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def coerce_value(owner: str, key: str, value: Value, default: Value) -> Value:
    """Check `value` against the type of the field's default (ints may widen to floats)."""
    if value is None and isinstance(default, str):
        return "none"  # a string switch whose value is the word "none"
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SpecError(f"{owner}: {key}={value!r} must be true or false")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, type(default)) or isinstance(value, bool):
        raise SpecError(f"{owner}: {key}={value!r} must be a {type(default).__name__}")
    return value


def split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


@dataclass(frozen=True)
class ComponentSpec:
    """Base of the component specs: a registry name, an optional variant, typed switches."""

    name: str
    registry: ClassVar[Registry | None] = None
    none_allowed: ClassVar[bool] = False  # "none" means: no such component

    @property
    def id(self) -> str:
        head = self.name
        if getattr(self, "variant", ""):
            head += f":{self.variant}"
        opts = [
            f"{f.name}={format_value(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
            if f.name not in ("name", "variant", "options") and getattr(self, f.name) != f.default
        ]
        opts += [f"{k}={format_value(v)}" for k, v in getattr(self, "options", ())]
        return head + (f"({','.join(opts)})" if opts else "")

    @classmethod
    def parse(cls, text: str) -> ComponentSpec:
        text = text.strip()
        opts_text = ""
        if text.endswith(")") and "(" in text:
            text, opts_text = text[:-1].split("(", 1)
        name, _, variant = text.partition(":")
        if not name:
            raise SpecError(f"empty {cls.__name__} name in {text!r}")
        kwargs: dict[str, Any] = {"name": name}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if variant:
            if "variant" not in fields:
                raise SpecError(f"{cls.__name__} {name!r} takes no ':variant' (got {variant!r})")
            kwargs["variant"] = variant
        extra: list[tuple[str, Value]] = []
        for item in filter(None, (s.strip() for s in opts_text.split(","))):
            key, eq, val = item.partition("=")
            if not eq:
                raise SpecError(f"option {item!r} in {cls.__name__} {name!r} must look like key=value")
            if key in fields and key not in ("name", "variant", "options"):
                kwargs[key] = parse_value(val)
            elif "options" in fields:
                extra.append((key, parse_value(val)))
            else:
                valid = [k for k in fields if k not in ("name", "variant")]
                raise SpecError(f"{cls.__name__} has no option {key!r}; valid: {', '.join(valid)}")
        if extra:
            kwargs["options"] = tuple(sorted(extra))
        return cls(**kwargs)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name not in ("name", "variant", "options"):
                value = coerce_value(type(self).__name__, f.name, getattr(self, f.name), f.default)
                object.__setattr__(self, f.name, value)

    def validate(self) -> None:
        """Check that the named component is registered (imports its module)."""
        if self.registry is None or (self.none_allowed and self.name == "none"):
            return
        try:
            self.registry.get(self.name)
        except KeyError as err:
            raise SpecError(str(err)) from None

    def option(self, key: str, default: Value = None) -> Value:
        return dict(getattr(self, "options", ())).get(key, default)
