"""Route patterns (``sensors/{device_id}/data``) and the MQTT filters behind them.

A pattern level is one of:

* a literal (``sensors``),
* ``{name}``: a named single level, subscribed as ``+``,
* ``+``: an anonymous single level,
* ``{name...}`` or ``#`` as the last level: every remaining level (MQTT ``#``).

Patterns are parsed once; :meth:`TopicPattern.match` runs for every message a
worker receives, so it only splits the topic and compares precomputed levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SHARE_PREFIX = "$share/"
_MAX_TOPIC_BYTES = 65535  # MQTT's limit on a UTF-8 encoded topic or filter


class TopicError(ValueError):
    """A route pattern, share group or filter that MQTT (or rmqtui) cannot use."""


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A parsed route pattern: its MQTT filter, its parameter names and a fast matcher."""

    pattern: str
    filter: str = field(init=False)
    params: tuple[str, ...] = field(init=False)
    # Precomputed plan for match(): never part of equality or repr.
    _fixed_levels: int = field(init=False, repr=False, compare=False)
    _literals: tuple[tuple[int, str], ...] = field(init=False, repr=False, compare=False)
    _captures: tuple[tuple[int, str], ...] = field(init=False, repr=False, compare=False)
    _multi: bool = field(init=False, repr=False, compare=False)
    _multi_name: str | None = field(init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, pattern: str) -> TopicPattern:
        """Parse ``pattern``; raises :class:`TopicError` with a sentence saying what is wrong."""
        return cls(pattern)

    def __post_init__(self) -> None:
        plan = _parse(self.pattern)
        for name, value in plan.items():
            object.__setattr__(self, name, value)

    def match(self, topic: str) -> dict[str, str] | None:
        """The parameters of a concrete ``topic``, or ``None`` when it does not match.

        As in MQTT, a trailing ``{rest...}``/``#`` also matches the parent level
        (``a/{rest...}`` matches ``a`` with ``rest == ""``), and a topic starting
        with ``$`` never matches, because patterns cannot start with ``$``.
        """
        if topic[:1] == "$":
            return None
        levels = topic.split("/")
        n = len(levels)
        fixed = self._fixed_levels
        if n != fixed and not (self._multi and n >= fixed):
            return None
        for i, literal in self._literals:
            if levels[i] != literal:
                return None
        params = {name: levels[i] for i, name in self._captures}
        if self._multi_name is not None:
            params[self._multi_name] = "/".join(levels[fixed:])
        return params


def _parse(pattern: str) -> dict[str, object]:
    """Validate ``pattern`` and build the fields of a :class:`TopicPattern`."""
    if not isinstance(pattern, str):
        raise TopicError(f"a topic pattern must be a string, got {type(pattern).__name__}")
    if pattern == "":
        raise TopicError("the topic pattern is empty; write one such as 'sensors/{device_id}/data'")
    if "\x00" in pattern:
        raise TopicError(f"the topic pattern {pattern!r} contains a NUL character, which MQTT forbids")
    if pattern.startswith(SHARE_PREFIX) or pattern == "$share":
        raise TopicError(
            f"the topic pattern {pattern!r} starts with $share; write the plain topic and set "
            "shared = true (and the group) on the route instead"
        )
    if pattern.startswith("$"):
        raise TopicError(
            f"the topic pattern {pattern!r} starts with '$', which brokers reserve for their own "
            "topics ($SYS); rmqtui routes cannot subscribe to them"
        )
    if len(pattern.encode("utf-8")) > _MAX_TOPIC_BYTES:
        raise TopicError(f"the topic pattern is longer than MQTT's limit of {_MAX_TOPIC_BYTES} bytes")

    levels = pattern.split("/")
    last = len(levels) - 1
    filter_levels: list[str] = []
    literals: list[tuple[int, str]] = []
    captures: list[tuple[int, str]] = []
    names: list[str] = []
    multi = False
    multi_name: str | None = None

    for i, level in enumerate(levels):
        if "{" in level or "}" in level:
            name, is_multi = _parse_param(pattern, level)
            if name in names:
                raise TopicError(f"the topic pattern {pattern!r} uses the parameter {{{name}}} twice; "
                                 "give each parameter its own name")
            names.append(name)
            if is_multi:
                if i != last:
                    raise TopicError(f"in the topic pattern {pattern!r}, the multi-level parameter "
                                     f"{{{name}...}} must be the last level")
                multi, multi_name = True, name
                filter_levels.append("#")
            else:
                captures.append((i, name))
                filter_levels.append("+")
        elif level == "#":
            if i != last:
                raise TopicError(f"in the topic pattern {pattern!r}, '#' must be the last level")
            multi = True
            filter_levels.append("#")
        elif level == "+":
            filter_levels.append("+")
        elif "+" in level or "#" in level:
            raise TopicError(f"the level {level!r} of the topic pattern {pattern!r} mixes text with a "
                             "wildcard; '+' and '#' must stand alone in their level "
                             "(use {name} to capture a level)")
        else:
            literals.append((i, level))
            filter_levels.append(level)

    return {
        "filter": "/".join(filter_levels),
        "params": tuple(names),
        "_fixed_levels": last if multi else last + 1,
        "_literals": tuple(literals),
        "_captures": tuple(captures),
        "_multi": multi,
        "_multi_name": multi_name,
    }


def _parse_param(pattern: str, level: str) -> tuple[str, bool]:
    """``{name}`` → (name, False); ``{name...}`` → (name, True); anything else raises."""
    if level.count("{") != level.count("}") or level.find("}") < level.find("{") or level.count("{") > 1:
        raise TopicError(f"the level {level!r} of the topic pattern {pattern!r} has unbalanced braces; "
                         "write a parameter as {name}")
    if not (level.startswith("{") and level.endswith("}")):
        raise TopicError(f"the level {level!r} of the topic pattern {pattern!r} mixes text with a "
                         "parameter; a parameter must fill its whole level, as in 'a/{name}/b'")
    inner = level[1:-1]
    is_multi = inner.endswith("...")
    name = inner[:-3] if is_multi else inner
    if name == "":
        raise TopicError(f"the topic pattern {pattern!r} has a parameter with no name ({level}); "
                         "name it, as in {device_id}")
    if not name.isidentifier():
        raise TopicError(f"the parameter name {name!r} in the topic pattern {pattern!r} is not a Python "
                         "identifier; use letters, digits and '_' (not starting with a digit)")
    return name, is_multi


def _check_group(group: str) -> None:
    if not isinstance(group, str) or group == "":
        raise TopicError("the share group is empty; set a name such as 'workers'")
    bad = sorted({c for c in group if c in "/+#\x00"})
    if bad:
        raise TopicError(f"the share group {group!r} contains {' '.join(repr(c) for c in bad)}; "
                         "a group name may not contain '/', '+', '#' or NUL")


def shared_filter(group: str, filter: str) -> str:
    """``$share/<group>/<filter>``; raises :class:`TopicError` for an unusable group."""
    _check_group(group)
    if not filter:
        raise TopicError("cannot share an empty topic filter")
    return f"{SHARE_PREFIX}{group}/{filter}"


def strip_share(topic: str) -> str:
    """``topic`` without a leading ``$share/<group>/`` (some brokers deliver it); else unchanged."""
    if not topic.startswith(SHARE_PREFIX):
        return topic
    end = topic.find("/", len(SHARE_PREFIX))
    return topic if end < 0 else topic[end + 1:]
