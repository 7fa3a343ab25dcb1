"""Config and rules loading: valid files load, every mistake names file:line:col."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from watcher.config import load_config, load_rules
from watcher.errors import ConfigError

FEED_XML = b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title></channel></rss>"


def write_project(
    tmp_path: Path, config: str, rules: str = "rules: []\n", *, rules_name: str = "main.yaml"
) -> Path:
    (tmp_path / "feed.xml").write_bytes(FEED_XML)
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / rules_name).write_text(rules, encoding="utf-8")
    path = tmp_path / "watcher.yaml"
    path.write_text(config, encoding="utf-8")
    return path


MINIMAL = """\
feeds:
  - {name: Local, url: file:feed.xml}
notify:
  console: console://
"""


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


def test_minimal_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path, MINIMAL))
    (feed,) = config.feeds
    assert feed.name == "Local"
    assert feed.url == (tmp_path / "feed.xml").resolve().as_uri()
    assert feed.interval == timedelta(minutes=15)
    assert config.store_url == "sqlite:///" + str((tmp_path / "var" / "watcher.db").resolve())
    assert config.targets == {"console": "console://"}


def test_full_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_HOST", "127.0.0.1:9")
    config_text = """\
store: postgresql://watcher@db/watcher
rules: rules/
defaults: {interval: 10m, tick: 2s}
fetch: {timeout: 20s, max_bytes: 1MB, allow_private_networks: true}
feeds:
  - {name: Local, url: file:feed.xml, tags: [world, test]}
  - name: Remote
    url: https://example.org/feed.xml
    interval: 1h
    fetch: {timeout: 5s}
notify:
  console: console://
  team: json://${HOOK_HOST}/hook
delivery: {max_attempts: 3, retry: 30s, max_retry: 1h}
"""
    rules = """\
entities:
  Putin: [Vladimir Putin, Putin, Путин]
  Trump: [Donald Trump, Trump]
rules:
  - {name: sanctions, match: sanctions, notify: [console]}
  - name: summit
    match: ['"Putin–Trump"', "@Putin AND @Trump"]
    feeds: [tag:world, Remote]
    notify: team
  - {name: everything, match: war}
"""
    config = load_config(write_project(tmp_path, config_text, rules))
    assert config.store_url == "postgresql+psycopg://watcher@db/watcher"
    assert config.tick == timedelta(seconds=2)
    local, remote = config.feeds
    assert local.tags == ("world", "test")
    assert local.interval == timedelta(minutes=10)
    assert local.fetch.timeout == 20
    assert local.fetch.max_bytes == 1_000_000
    assert local.fetch.allow_private_networks
    assert remote.interval == timedelta(hours=1)
    assert remote.fetch.timeout == 5
    assert remote.fetch.max_bytes == 1_000_000
    assert config.targets["team"] == "json://127.0.0.1:9/hook"
    assert config.delivery.max_attempts == 3
    sanctions, summit, everything = config.rules
    assert sanctions.notify == ("console",)
    assert summit.queries == ('"Putin–Trump"', "@Putin AND @Trump")
    assert summit.notify == ("team",)
    assert summit.feeds == ("tag:world", "Remote")
    assert everything.notify == ("console", "team")  # no notify: means every target
    assert config.rulebook.entities["Putin"] == ("Vladimir Putin", "Putin", "Путин")


def test_targets_with_limits_quiet_hours_and_templates(tmp_path: Path) -> None:
    config_text = MINIMAL.replace(
        "console: console://",
        "console:\n    url: console://\n    max: 10/hour\n    quiet: 22:00-07:00 Europe/Kyiv\n"
        "    template: {title: '{{ alert.title }}'}",
    )
    rules = "rules:\n  - {name: a, match: war, digest: 'daily at 08:00 Europe/Kyiv'}\n"
    config = load_config(write_project(tmp_path, config_text, rules))
    policy = config.policies["console"]
    assert config.targets["console"] == "console://"
    assert policy.max is not None
    assert policy.max.count == 10
    assert policy.quiet is not None
    assert str(policy.quiet.zone) == "Europe/Kyiv"
    assert policy.template is not None
    assert policy.template.title == "{{ alert.title }}"
    assert config.rules[0].digest is not None


def test_rules_include_entities_from_another_file(tmp_path: Path) -> None:
    (tmp_path / "entities.yaml").write_text("entities:\n  Kyiv: [Kyiv, Kiev]\n", "utf-8")
    rules = "include: [../entities.yaml]\nrules:\n  - {name: kyiv, match: '@Kyiv'}\n"
    config = load_config(write_project(tmp_path, MINIMAL, rules))
    assert config.rulebook.entities == {"Kyiv": ("Kyiv", "Kiev")}
    assert (tmp_path / "entities.yaml").resolve() in config.rulebook.files


def test_config_include_adds_feeds(tmp_path: Path) -> None:
    (tmp_path / "more.yaml").write_text(
        "feeds:\n  - {name: Other, url: 'https://example.org/rss'}\n", "utf-8"
    )
    config = load_config(write_project(tmp_path, MINIMAL + "include: [more.yaml]\n"))
    assert [feed.name for feed in config.feeds] == ["Local", "Other"]


def test_rules_file_alone_loads_without_a_config(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - {name: a, match: sanctions, notify: [nowhere]}\n", "utf-8")
    (rule,) = load_rules(path).rules
    assert rule.notify == ("nowhere",)


# Each bad file: (config text, rules text, expected "line:col" of the error, words in the message)
BAD_CASES = {
    "yaml syntax": (MINIMAL + "defaults: {interval: 15m\n", None, "watcher.yaml:6:1", "YAML"),
    "unknown key": (MINIMAL.replace("feeds:", "feeeds:"), None, "watcher.yaml:1:1", "feeeds"),
    "bad duration": (
        MINIMAL.replace("file:feed.xml}", "file:feed.xml, interval: 15 minutes}"),
        None,
        "watcher.yaml:2:49",
        "duration",
    ),
    "bad scheme": (
        MINIMAL.replace("file:feed.xml", "ftp://example.org/f"),
        None,
        "watcher.yaml:2:24",
        "http(s)",
    ),
    "missing feed file": (
        MINIMAL.replace("feed.xml", "nothere.xml"),
        None,
        "watcher.yaml:2:24",
        "not found",
    ),
    "bad target": (MINIMAL.replace("console://", "nope://x"), None, "watcher.yaml:4:12", "Apprise"),
    "unset env": (
        MINIMAL.replace("console://", "${WATCHER_TEST_UNSET_VAR}"),
        None,
        "watcher.yaml:4:12",
        "WATCHER_TEST_UNSET_VAR",
    ),
    "feed without url": ("feeds:\n  - {name: x}\n", None, "watcher.yaml:2:5", "url"),
    "duplicate feed": (
        MINIMAL.replace("notify:", "  - {name: Local, url: file:feed.xml}\nnotify:"),
        None,
        "watcher.yaml:3:5",
        "twice",
    ),
    "rule syntax": (
        MINIMAL,
        "rules:\n  - {name: a, match: 'sanctions AND'}\n",
        "main.yaml:2:36",
        "expected",
    ),
    "unknown entity": (
        MINIMAL,
        "rules:\n  - name: a\n    match: '@Nobody AND war'\n",
        "main.yaml:3:13",
        "Nobody",
    ),
    "unknown target": (
        MINIMAL,
        "rules:\n  - {name: a, match: war, notify: [team]}\n",
        "main.yaml:2:5",
        "team",
    ),
    "duplicate rule": (
        MINIMAL,
        "rules:\n  - {name: a, match: war}\n  - {name: a, match: peace}\n",
        "main.yaml:3:5",
        "twice",
    ),
    "unknown feed scope": (
        MINIMAL,
        "rules:\n  - {name: a, match: war, feeds: ['tag:nope']}\n",
        "main.yaml:2:5",
        "tag:nope",
    ),
    "rule without match": (MINIMAL, "rules:\n  - {name: a}\n", "main.yaml:2:5", "match"),
    "unknown rule key": (
        MINIMAL,
        "rules:\n  - {name: a, match: war, notfy: [console]}\n",
        "main.yaml:2:27",
        "notify",
    ),
    "bad entity name": (MINIMAL, "entities:\n  Bad Name: [x]\n", "main.yaml:2:3", "letters"),
    "contradictory rule": (
        MINIMAL,
        "rules:\n  - {name: a, match: 'war -war'}\n",
        "main.yaml:2:23",
        "never match",
    ),
    "always-true rule": (
        MINIMAL,
        "rules:\n  - {name: a, match: 'war OR NOT war'}\n",
        "main.yaml:2:23",
        "every entry",
    ),
    "bad regex": (MINIMAL, "rules:\n  - {name: a, match: '/(/'}\n", "main.yaml:2:23", "/"),
    "bad rate limit": (
        MINIMAL.replace("console: console://", "console: {url: 'console://', max: lots}"),
        None,
        "watcher.yaml:4:37",
        "limit",
    ),
    "bad quiet hours": (
        MINIMAL.replace("console: console://", "console: {url: 'console://', quiet: '22-7'}"),
        None,
        "watcher.yaml:4:39",
        "quiet",
    ),
    "bad digest": (
        MINIMAL,
        "rules:\n  - {name: a, match: war, digest: weekly}\n",
        "main.yaml:2:35",
        "digest",
    ),
    "bad template": (
        MINIMAL,
        "rules:\n  - name: a\n    match: war\n    template:\n"
        "      body: |\n        ok\n        {{ title | nope }}\n",
        "main.yaml:7:9",
        "template",
    ),
    "empty alias": (MINIMAL, "entities:\n  Good: ['--']\n", "main.yaml:2:10", "alias"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_errors_name_file_line_and_column(tmp_path: Path, case: str) -> None:
    config_text, rules_text, where, words = BAD_CASES[case]
    error = error_of(write_project(tmp_path, config_text, rules_text or "rules: []\n"))
    rendered = str(error)
    assert error.location is not None, rendered
    assert str(error.location).endswith(where), rendered
    assert rendered.startswith(str(tmp_path)), rendered
    assert words.lower() in rendered.lower(), rendered


def test_suspicious_rules_are_warnings_with_location(tmp_path: Path) -> None:
    rules = "rules:\n  - {name: a, match: 'NOT sport'}\n  - {name: b, match: war}\n"
    config = load_config(write_project(tmp_path, MINIMAL, rules))
    (warning,) = config.warnings
    assert warning.startswith(f"{tmp_path / 'rules' / 'main.yaml'}:2:23: warning:")
    assert "NOT sport" in warning


def test_rule_error_shows_the_query_with_a_caret(tmp_path: Path) -> None:
    rules = "rules:\n  - {name: a, match: 'war AND (peace'}\n"
    error = error_of(write_project(tmp_path, MINIMAL, rules))
    lines = str(error).splitlines()
    query_line = next(line for line in lines if "war AND (peace" in line)
    caret_line = lines[lines.index(query_line) + 1]
    assert "^" in caret_line
    assert caret_line.index("^") >= query_line.index("(")


def test_block_scalar_query_error_points_into_the_block(tmp_path: Path) -> None:
    rules = "rules:\n  - name: a\n    match: |\n      war AND\n      peace AND\n"
    error = error_of(write_project(tmp_path, MINIMAL, rules))
    assert error.location is not None
    assert error.location.line == 5, str(error)
