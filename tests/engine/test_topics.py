"""Route patterns → MQTT filters, matching and $share handling."""

from __future__ import annotations

import pytest

from rmqtui.engine.topics import TopicError, TopicPattern, shared_filter, strip_share


@pytest.mark.parametrize(
    ("pattern", "filter", "params"),
    [
        ("sensors/{device_id}/data", "sensors/+/data", ("device_id",)),
        ("telemetry/{site}/{rest...}", "telemetry/+/#", ("site", "rest")),
        ("alerts/{level}", "alerts/+", ("level",)),
        ("a/+/b/#", "a/+/b/#", ()),
        ("plain/topic", "plain/topic", ()),
        ("#", "#", ()),
        ("{all...}", "#", ("all",)),
        ("a//b", "a//b", ()),
    ],
)
def test_pattern_to_filter(pattern: str, filter: str, params: tuple[str, ...]) -> None:
    p = TopicPattern.parse(pattern)
    assert (p.pattern, p.filter, p.params) == (pattern, filter, params)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("sensors/{device_id}/data", "sensors/dev-7/data", {"device_id": "dev-7"}),
        ("sensors/{device_id}/data", "sensors//data", {"device_id": ""}),
        ("telemetry/{site}/{rest...}", "telemetry/paris/a/b/c", {"site": "paris", "rest": "a/b/c"}),
        ("telemetry/{site}/{rest...}", "telemetry/paris/x", {"site": "paris", "rest": "x"}),
        # MQTT: '#' also matches the parent level.
        ("telemetry/{site}/{rest...}", "telemetry/paris", {"site": "paris", "rest": ""}),
        ("a/+/c/{x}", "a/b/c/d", {"x": "d"}),
        ("a/#", "a/b/c", {}),
        ("plain/topic", "plain/topic", {}),
    ],
)
def test_match(pattern: str, topic: str, expected: dict[str, str]) -> None:
    assert TopicPattern.parse(pattern).match(topic) == expected


@pytest.mark.parametrize(
    ("pattern", "topic"),
    [
        ("sensors/{device_id}/data", "sensors/dev-7/status"),
        ("sensors/{device_id}/data", "sensors/dev-7/data/extra"),
        ("sensors/{device_id}/data", "sensors/dev-7"),
        ("telemetry/{site}/{rest...}", "telemetry"),
        ("telemetry/{site}/{rest...}", "metrics/paris/a"),
        ("plain/topic", "plain/topics"),
        ("#", "$SYS/broker/uptime"),
        ("{x}/y", "$SYS/y"),
    ],
)
def test_no_match(pattern: str, topic: str) -> None:
    assert TopicPattern.parse(pattern).match(topic) is None


def test_patterns_compare_by_text() -> None:
    assert TopicPattern.parse("a/{b}") == TopicPattern("a/{b}")
    assert hash(TopicPattern.parse("a/{b}")) == hash(TopicPattern("a/{b}"))


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("", "empty"),
        ("a/{}/b", "no name"),
        ("a/{...}", "no name"),
        ("a/{1st}", "not a Python identifier"),
        ("a/{dev-id}", "not a Python identifier"),
        ("{x}/{x}", "twice"),
        ("{x}/{x...}", "twice"),
        ("a/{rest...}/b", "must be the last level"),
        ("a/#/b", "must be the last level"),
        ("a{b}", "mixes text with a parameter"),
        ("a/{b}c", "mixes text with a parameter"),
        ("a/{b", "unbalanced"),
        ("a/b}", "unbalanced"),
        ("a/{{b}}", "unbalanced"),
        ("$share/g/a", "$share"),
        ("$SYS/#", "reserve"),
        ("a/\x00", "NUL"),
        ("a+b", "wildcard"),
        ("a/b#", "wildcard"),
    ],
)
def test_rejections(pattern: str, words: str) -> None:
    with pytest.raises(TopicError) as info:
        TopicPattern.parse(pattern)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


def test_shared_filter() -> None:
    assert shared_filter("workers", "sensors/+/data") == "$share/workers/sensors/+/data"


@pytest.mark.parametrize("group", ["", "a/b", "a+", "#"])
def test_shared_filter_rejects_bad_group(group: str) -> None:
    with pytest.raises(TopicError, match="group"):
        shared_filter(group, "a/b")


@pytest.mark.parametrize(
    ("topic", "stripped"),
    [
        ("$share/workers/sensors/a/data", "sensors/a/data"),
        ("sensors/a/data", "sensors/a/data"),
        ("$share/workers", "$share/workers"),
        ("$SYS/x", "$SYS/x"),
    ],
)
def test_strip_share(topic: str, stripped: str) -> None:
    assert strip_share(topic) == stripped
