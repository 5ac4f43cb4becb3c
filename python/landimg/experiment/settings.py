"""Settings declared once: a dataclass field carries its type, default, one-line doc and bounds.

A configuration section is any dataclass. For each field, :func:`specs` derives a :class:`Spec`
(the TOML key) from

* the type annotation (``bool``, ``int``, ``float``, ``str``, ``tuple[str, ...]``,
  ``tuple[float, ...]``, ``X | None``; ``typing.Literal[...]`` gives the choices; ``int | Literal["auto"]``
  an integer or one of the words),
* the default,
* the field metadata written by :func:`setting` (``doc``, ``choices``, ``ge``/``gt``/``le``/``lt``,
  ``finite``),
  or, for classes that do not use :func:`setting` (the analysis methods of :mod:`landimg.da`), the
  numpy docstring ``Attributes`` section of the class (``name : {"a", "b"}`` gives the choices, the
  description the doc).

:func:`build_section` turns a TOML table into the dataclass: unknown keys (with "did you mean"),
types, choices and bounds are checked here, then the class's own ``__post_init__`` runs and its
``ValueError`` becomes a one-line :class:`ConfigError` naming the key. Optional fields have no TOML
value for None: the key is omitted. Numbers are refused generically when no setting can mean them:
``inf`` and ``nan`` (TOML has both) unless the field is declared ``finite=False``, and integers that do not
fit in 64 bits.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

__all__ = ["ConfigError", "Spec", "build_section", "setting", "specs", "suggest"]


class ConfigError(ValueError):
    """A configuration key or value is invalid (the message names the key)."""


def setting(
    default: Any,
    doc: str,
    *,
    choices: tuple[Any, ...] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    finite: bool = True,
) -> Any:
    """A dataclass field with its one-line ``doc``, allowed ``choices`` and numeric bounds (``finite=False``:
    a float key that may be ``inf`` or ``nan``)."""
    meta = {"doc": doc, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt, "finite": finite}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: tuple(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Spec:
    """One configuration key: ``name``, base ``kind`` (bool/int/float/str/tuple-of), default, doc, checks."""

    name: str
    kind: Any
    default: Any
    doc: str
    optional: bool = False
    item: Any = None
    choices: tuple[Any, ...] | None = None
    bounds: tuple[tuple[str, float], ...] = ()
    finite: bool = True
    words: tuple[str, ...] = ()


_SCALARS = (bool, int, float, str)


def _words(typ: Any) -> tuple[str, ...] | None:
    """The strings of a ``Literal`` of strings, else None."""
    args = typing.get_args(typ)
    if typing.get_origin(typ) is typing.Literal and args and all(isinstance(a, str) for a in args):
        return tuple(args)
    return None


def _resolve(typ: Any) -> tuple[Any, bool, Any, tuple | None, tuple[str, ...]] | None:
    """(kind, optional, item type, Literal choices, words) of an annotation, or None if not a TOML type."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 2 and len(rest) == len(args):  # a number or one of some words: int | Literal["auto"]
            words = [w for w in map(_words, rest) if w]
            other = [a for a in rest if _words(a) is None]
            if len(words) == 1 and len(other) == 1 and other[0] in (int, float):
                return other[0], False, None, None, words[0]
            return None
        if len(rest) != 1 or len(rest) == len(args):
            return None
        inner = _resolve(rest[0])
        return None if inner is None else (inner[0], True, inner[2], inner[3], inner[4])
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        return (kinds.pop(), False, None, tuple(args), ()) if len(kinds) == 1 else None
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in (str, float, int):
        return tuple, False, args[0], None, ()
    return (typ, False, None, None, ()) if typ in _SCALARS else None


def _docstring_attributes(cls: type) -> dict[str, tuple[str, tuple[str, ...] | None]]:
    """name -> (one-line description, choices from ``{"a", "b"}``) from the numpy ``Attributes`` sections
    of ``cls`` and of its base classes (a field documented once in a shared base)."""
    out: dict[str, tuple[str, tuple[str, ...] | None]] = {}
    for klass in reversed(cls.__mro__):
        out.update(_own_attributes(klass))
    return out


def _own_attributes(cls: type) -> dict[str, tuple[str, tuple[str, ...] | None]]:
    """name -> (description, choices) of the ``Attributes`` section of ``cls``'s own docstring."""
    text = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    m = re.search(r"^Attributes\n-+\n(.*?)(?:\n\S[^\n]*\n-+\n|\Z)", text, re.DOTALL | re.MULTILINE)
    if not m:
        return {}
    out: dict[str, tuple[str, tuple[str, ...] | None]] = {}
    for block in re.split(r"\n(?=\S)", m.group(1)):
        head, _, body = block.partition("\n")
        names, _, typ = head.partition(":")
        doc = " ".join(line.strip() for line in body.splitlines() if line.strip())
        found = re.search(r"\{(.*?)\}", typ)
        choices = tuple(re.findall(r"[\"']([^\"']+)[\"']", found.group(1))) if found else None
        for name in names.split(","):
            out[name.strip()] = (doc, choices or None)
    return out


def specs(cls: type, exclude: tuple[str, ...] = ()) -> dict[str, Spec]:
    """The configuration keys of the dataclass ``cls`` (fields of TOML-able types, minus ``exclude``)."""
    hints = typing.get_type_hints(cls)
    from_doc = _docstring_attributes(cls)
    out: dict[str, Spec] = {}
    for f in dataclasses.fields(cls):
        resolved = _resolve(hints[f.name])
        if f.name in exclude or f.name.startswith("_") or resolved is None or not f.init:
            continue
        kind, optional, item, literal, words = resolved
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        meta = f.metadata
        doc_text, doc_choices = from_doc.get(f.name, ("", None))
        bounds = tuple((op, meta[op]) for op in ("ge", "gt", "le", "lt") if meta.get(op) is not None)
        out[f.name] = Spec(
            name=f.name, kind=kind, default=default, doc=meta.get("doc") or doc_text, optional=optional,
            item=item, choices=meta.get("choices") or literal or doc_choices, bounds=bounds, words=words,
            finite=meta.get("finite", True),
        )  # fmt: skip
    return out


def suggest(name: str, choices: typing.Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_INT64 = 2**63 - 1


def _scalar(key: str, value: Any, kind: Any, finite: bool = True) -> Any:
    ok = (
        isinstance(value, bool)
        if kind is bool
        else not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else kind)
    )
    if not ok:
        raise ConfigError(f"{key}: expected {_TYPE_WORDS[kind]}, got {type(value).__name__} {value!r}")
    if kind is int and abs(value) > _INT64:
        raise ConfigError(f"{key} = {value} is out of range (a 64-bit integer: at most {_INT64})")
    if kind is float:
        try:
            value = float(value)
        except OverflowError:  # an integer beyond the float range
            raise ConfigError(f"{key} = {value} is out of range (a finite number)") from None
        if finite and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
    return value


_OPS = {
    "ge": (">=", float.__ge__),
    "gt": (">", float.__gt__),
    "le": ("<=", float.__le__),
    "lt": ("<", float.__lt__),
}


def coerce(key: str, value: Any, spec: Spec) -> Any:
    """``value`` checked against ``spec`` (type, choices, bounds) in canonical form; raises ConfigError."""
    if spec.kind is tuple:
        if isinstance(value, str) and spec.item is str:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        value = tuple(_scalar(key, v, spec.item, spec.finite) for v in value)
        items = value
    elif spec.words and isinstance(value, str):
        if value not in spec.words:
            words = " or ".join(f'"{w}"' for w in spec.words)
            raise ConfigError(f"{key}: expected {_TYPE_WORDS[spec.kind]} or {words}, got {value!r}")
        return value
    else:
        value = _scalar(key, value, spec.kind, spec.finite)
        items = (value,)
    for v in items:
        if spec.choices is not None and v not in spec.choices:
            valid = ", ".join(str(c) for c in spec.choices)
            raise ConfigError(f"{key}: {v!r} is not one of {valid}{suggest(v, spec.choices)}")
        for op, bound in spec.bounds:
            word, check = _OPS[op]
            if not check(float(v), float(bound)):
                raise ConfigError(f"{key} must be {word} {bound:g}, got {v!r}")
    return value


def _post_init_error(section: str, keys: typing.Iterable[str], exc: Exception) -> ConfigError:
    """A ValueError of a dataclass's own checks as a one-line ConfigError naming the key it concerns."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    found = [(m.start(), k) for k in keys if (m := re.search(rf"\b{re.escape(k)}\b", msg))]
    if not found:
        return ConfigError(f"[{section}]: {msg}")
    name = min(found)[1]
    msg = re.sub(rf"^{re.escape(name)}(\s*:\s*|\s+(?=must|is|has))", "", msg)
    return ConfigError(f"{section}.{name}: {msg}")


def build_section(
    cls: type, section: str, body: dict[str, Any], source: str, exclude: tuple[str, ...] = ()
) -> Any:
    """The dataclass ``cls`` from the TOML table ``body`` of ``[section]`` (missing keys: defaults).

    Raises
    ------
    ConfigError
        Unknown key (closest valid name suggested), wrong type, value outside its choices or bounds,
        or a check of ``cls.__post_init__`` (the message names ``section.key``).
    """
    keys = specs(cls, exclude)
    kwargs = {}
    for key, value in body.items():
        if key not in keys:
            raise ConfigError(
                f"{source}: unknown key {section}.{key}{suggest(key, keys)} (valid in [{section}]: {', '.join(keys)})"
            )
        kwargs[key] = coerce(f"{section}.{key}", value, keys[key])
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise _post_init_error(section, keys, exc) from None
