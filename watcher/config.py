"""Load and validate config/watcher.yaml and the rules files it names.

Everything a user writes is checked here, once, and every mistake is reported with
file:line:col and a hint. The result is a frozen `Config` the rest of watcher trusts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from watcher.errors import ConfigError, Location, RuleSyntaxError
from watcher.fetch import settings_problem as fetch_settings_problem
from watcher.models import FeedConfig, FetchSettings, Rule, TargetPolicy, TemplateSource
from watcher.notify import check_target_url, check_target_urls
from watcher.pacing import parse_digest, parse_quiet_hours, parse_rate_limit
from watcher.render import compile_template
from watcher.rules.analysis import Severity, problems
from watcher.rules.query import parse_query
from watcher.rules.text import tokenize
from watcher.units import parse_duration, parse_size
from watcher.yamlfile import YamlNode, load_yaml, walk_files

T = TypeVar("T")
DEFAULT_INTERVAL = timedelta(minutes=15)
MIN_INTERVAL = timedelta(seconds=1)
DEFAULT_TICK = timedelta(seconds=5)
DEFAULT_LEASE = timedelta(minutes=5)
_ENTITY_NAME = re.compile(r"[A-Za-z0-9_]+")
_NAME = re.compile(r"[^\s\x00-\x1f]+(?: [^\s\x00-\x1f]+)*")

_CONFIG_KEYS = frozenset(
    {"store", "rules", "defaults", "fetch", "feeds", "notify", "include", "delivery", "metrics"}
)
_METRICS_KEYS = frozenset({"listen"})
_INCLUDED_CONFIG_KEYS = frozenset({"feeds"})
_SCHEDULE_KEYS = frozenset({"interval", "adaptive", "min_interval", "max_interval"})
_DEFAULTS_KEYS = _SCHEDULE_KEYS | {"tick", "lease"}
_FETCH_KEYS = frozenset(
    {"timeout", "max_bytes", "allow_private_networks", "max_redirects", "proxy", "headers", "auth"}
)
_GLOBAL_FETCH_KEYS = _FETCH_KEYS | {"max_in_flight", "max_per_host"}
_AUTH_KEYS = frozenset({"user", "password"})
_FEED_KEYS = _SCHEDULE_KEYS | {"name", "url", "tags", "fetch"}
_DELIVERY_KEYS = frozenset({"max_attempts", "retry", "max_retry", "max_age"})
_RULES_FILE_KEYS = frozenset({"include", "entities", "rules"})
_RULE_KEYS = frozenset({"name", "match", "notify", "feeds", "digest", "template"})
_TARGET_KEYS = frozenset({"url", "max", "quiet", "template"})
_TEMPLATE_KEYS = frozenset({"title", "body"})


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    max_attempts: int = 10  # then the alert is dead (visible, retryable by hand)
    retry: timedelta = timedelta(minutes=1)  # first retry delay; doubles each attempt
    max_retry: timedelta = timedelta(hours=6)
    max_age: timedelta = timedelta(
        days=2
    )  # an alert still failing this long after its match is dead


@dataclass(frozen=True, slots=True)
class FetchLimits:
    max_in_flight: int = 32  # fetches at once, over all hosts
    max_per_host: int = 2  # fetches at once to one host: be polite


@dataclass(frozen=True, slots=True)
class _Schedule:
    interval: timedelta = DEFAULT_INTERVAL
    adaptive: bool = False
    min_interval: timedelta | None = None  # None: min(interval, 5m)
    max_interval: timedelta | None = None  # None: max(interval, 6h)


@dataclass(frozen=True, slots=True)
class RuleBook:
    """Rules and the entities they use, with the files they came from."""

    rules: tuple[Rule, ...]
    entities: Mapping[str, tuple[str, ...]]
    files: tuple[Path, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    store_url: str
    feeds: tuple[FeedConfig, ...]
    targets: Mapping[str, str]  # target name -> Apprise URL (secrets expanded)
    rulebook: RuleBook
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    tick: timedelta = DEFAULT_TICK
    warnings: tuple[str, ...] = ()
    lease: timedelta = DEFAULT_LEASE  # how long an instance holds a claimed feed or alert
    rules_path: Path | None = None  # the rules file or folder (it may not exist yet)
    metrics_listen: tuple[str, int] | None = None  # serve /metrics and /healthz here
    fetch_limits: FetchLimits = field(default_factory=FetchLimits)
    policies: Mapping[str, TargetPolicy] = field(default_factory=dict)  # per target name

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs: target URLs and the store URL."""
        return (*self.targets.values(), self.store_url)

    def reload_rules(self) -> RuleBook:
        """Read the rules again (for hot reload), checked against this config."""
        if self.rules_path is None or not self.rules_path.exists():
            return RuleBook((), {}, ())
        return load_rules(self.rules_path, targets=self.targets, feeds=self.feeds)

    def feed_named(self, name: str) -> FeedConfig | None:
        return next((feed for feed in self.feeds if feed.name == name), None)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.rulebook.rules

    def feed_tags(self, feed_name: str) -> tuple[str, ...]:
        feed = self.feed_named(feed_name)
        return feed.tags if feed else ()


def load_config(path: Path | str, *, with_rules: bool = True) -> Config:
    """Read and validate a config file and its rules. Raises ConfigError.

    `with_rules=False` skips the rules (commands that only read the store still work while
    a rules file is broken)."""
    path = Path(path).absolute()
    root = load_yaml(path)
    top = root.items("the config", _CONFIG_KEYS)
    base = path.parent

    store_url = _store_url(top["store"], base) if "store" in top else _default_store(base)
    defaults = top["defaults"].items("defaults", _DEFAULTS_KEYS) if "defaults" in top else {}
    schedule = _schedule(defaults, _Schedule())
    tick = _duration(defaults["tick"], "tick") if "tick" in defaults else DEFAULT_TICK
    lease = _duration(defaults["lease"], "lease") if "lease" in defaults else DEFAULT_LEASE
    fetch_items = top["fetch"].items("fetch", _GLOBAL_FETCH_KEYS) if "fetch" in top else {}
    fetch = _fetch_settings(fetch_items, FetchSettings())
    limits = FetchLimits(
        **{
            key: fetch_items[key].integer(key, 1)
            for key in ("max_in_flight", "max_per_host")
            if key in fetch_items
        }
    )

    feed_nodes = _feed_nodes(top, path)
    feeds = _feeds(feed_nodes, schedule, fetch)
    targets, policies = _targets(top.get("notify"))
    delivery = _delivery(top.get("delivery"))

    if "rules" in top:
        rules_path = (base / top["rules"].text("rules")).resolve()
        if not rules_path.exists():
            raise top["rules"].error(
                f"rules path not found: {rules_path}", "give a rules file or a folder of *.yaml"
            )
    else:
        rules_path = base / "rules"
    rulebook = (
        load_rules(rules_path, targets=targets, feeds=feeds)
        if with_rules and rules_path.exists()
        else RuleBook((), {}, ())
    )
    if not feeds:
        raise root.error("no feeds configured", "add a feeds: list with at least one url")
    return Config(
        path=path,
        store_url=store_url,
        feeds=feeds,
        targets=targets,
        rulebook=rulebook,
        delivery=delivery,
        tick=tick,
        lease=lease,
        warnings=rulebook.warnings,
        rules_path=rules_path,
        metrics_listen=_metrics_listen(top["metrics"]) if "metrics" in top else None,
        fetch_limits=limits,
        policies=policies,
    )


def load_rules(
    path: Path,
    *,
    targets: Mapping[str, str] | None = None,
    feeds: Collection[FeedConfig] | None = None,
) -> RuleBook:
    """Read a rules file or every *.yaml of a folder.

    With `targets`/`feeds` given, each rule's notify targets and feed scopes are checked
    against them; `watcher rules test --rules FILE` loads rules without a config.
    """
    files = list(walk_files(path)) if path.is_dir() else [path]
    collector = _RuleCollector()
    for file in files:
        collector.read(file.resolve())
    rulebook = collector.finish()
    for rule in rulebook.rules:
        _check_rule_references(rule, targets, feeds)
    if targets:
        # A rule without notify: goes to every target of the config.
        rules = tuple(
            rule if rule.notify else dataclasses.replace(rule, notify=tuple(targets))
            for rule in rulebook.rules
        )
        rulebook = dataclasses.replace(rulebook, rules=rules)
    return rulebook


class _RuleCollector:
    """Reads rules files and their includes, then compiles-checks every query."""

    def __init__(self) -> None:
        self.entities: dict[str, tuple[str, ...]] = {}
        self.entity_locations: dict[str, Location] = {}
        self.rule_nodes: list[tuple[YamlNode, YamlNode]] = []  # (rule mapping, its file root)
        self.files: list[Path] = []
        self.reading: list[Path] = []

    def read(self, file: Path) -> None:
        if file in self.files:
            return
        if file in self.reading:
            raise ConfigError(f"include cycle: {' -> '.join(map(str, [*self.reading, file]))}")
        self.reading.append(file)
        root = load_yaml(file)
        top = root.items(f"the rules file {file.name}", _RULES_FILE_KEYS)
        for include in top["include"].string_or_list("include") if "include" in top else []:
            target = (file.parent / include.text("include")).resolve()
            if not target.is_file():
                raise include.error(f"included file not found: {target}")
            self.read(target)
        if "entities" in top:
            self._entities(top["entities"])
        for rule in top["rules"].elements("rules") if "rules" in top else []:
            self.rule_nodes.append((rule, root))
        self.reading.pop()
        self.files.append(file)

    def _entities(self, node: YamlNode) -> None:
        for name, aliases_node in node.items("entities").items():
            where = node.key_location(name)
            if not _ENTITY_NAME.fullmatch(name):
                raise ConfigError(
                    f"entity name {name!r} may only contain letters, digits and _",
                    where,
                    "it is written @Name in queries, e.g. @Zelenskyy",
                )
            if name in self.entities:
                raise ConfigError(
                    f"entity {name} is defined twice (first at {self.entity_locations[name]})",
                    where,
                )
            aliases = []
            for alias_node in aliases_node.string_or_list(f"the aliases of {name}"):
                alias = alias_node.text(f"an alias of {name}").strip()
                if not tokenize(alias):
                    raise alias_node.error(f"alias {alias!r} of {name} has no letters or digits")
                aliases.append(alias)
            if not aliases:
                raise ConfigError(f"entity {name} has no aliases", where)
            self.entities[name] = tuple(aliases)
            self.entity_locations[name] = where

    def finish(self) -> RuleBook:
        rules: list[Rule] = []
        warnings: list[str] = []
        seen: dict[str, Location] = {}
        for node, _root in self.rule_nodes:
            rule = _rule(node, self.entities, warnings)
            if rule.name in seen:
                raise ConfigError(
                    f"rule {rule.name!r} is defined twice (first at {seen[rule.name]})",
                    rule.location,
                )
            seen[rule.name] = node.location
            rules.append(rule)
        return RuleBook(tuple(rules), dict(self.entities), tuple(self.files), tuple(warnings))


def _rule(node: YamlNode, entities: Mapping[str, tuple[str, ...]], warnings: list[str]) -> Rule:
    items = node.items("a rule", _RULE_KEYS)
    if "name" not in items:
        raise node.error("a rule needs a name", "e.g. - {name: sanctions, match: sanctions}")
    name = items["name"].text("the rule name").strip()
    if not _NAME.fullmatch(name):
        raise items["name"].error(f"rule name {name!r} is empty or has control characters")
    if "match" not in items:
        raise node.error(f"rule {name!r} needs a match: query")
    query_nodes = items["match"].string_or_list("match")
    if not query_nodes:
        raise items["match"].error(f"rule {name!r} has an empty match: list")
    queries = tuple(_query(query_node, entities, warnings) for query_node in query_nodes)
    notify = tuple(
        target.text("a notify target").strip()
        for target in (items["notify"].string_or_list("notify") if "notify" in items else [])
    )
    feeds = tuple(
        scope.text("a feed name or tag:").strip()
        for scope in (items["feeds"].string_or_list("feeds") if "feeds" in items else [])
    )
    digest = _parsed(items["digest"], "digest", parse_digest) if "digest" in items else None
    template = _template(items["template"]) if "template" in items else None
    return Rule(
        name=name,
        queries=queries,
        notify=notify,
        feeds=feeds,
        digest=digest,
        template=template,
        location=node.location,
        query_locations=tuple(query_node.offset_location(0) for query_node in query_nodes),
    )


def _query(node: YamlNode, entities: Mapping[str, tuple[str, ...]], warnings: list[str]) -> str:
    """The query text, parsed and analysed: an error for a query that can match every entry
    or none, a warning for a suspicious part."""
    query = node.text("a match query")
    try:
        parsed = parse_query(query, entities)
    except RuleSyntaxError as exc:
        raise _query_error(node, query, exc.message, exc.offset, exc.length) from None
    for problem in problems(parsed):
        if problem.severity is Severity.ERROR:
            raise _query_error(node, query, problem.message, problem.offset, problem.length)
        caret = " " * problem.offset + "^" * max(1, problem.length)
        where = node.offset_location(problem.offset)
        warnings.append(f"{where}: warning: {problem.message}\n    {query}\n    {caret}")
    return query


def _query_error(node: YamlNode, query: str, message: str, offset: int, length: int) -> ConfigError:
    caret = " " * offset + "^" * max(1, length)
    return ConfigError(f"{message}\n    {query}\n    {caret}", node.offset_location(offset))


def _check_rule_references(
    rule: Rule, targets: Mapping[str, str] | None, feeds: Collection[FeedConfig] | None
) -> None:
    if targets is not None:
        for target in rule.notify:
            if target not in targets:
                raise ConfigError(
                    f"rule {rule.name!r} notifies {target!r}, which is not in the config's notify:",
                    rule.location,
                    "known targets: " + (", ".join(sorted(targets)) or "none"),
                )
    if feeds is not None:
        names = {feed.name for feed in feeds}
        tags = {tag for feed in feeds for tag in feed.tags}
        for scope in rule.feeds:
            known = scope[4:] in tags if scope.startswith("tag:") else scope in names
            if not known:
                raise ConfigError(
                    f"rule {rule.name!r} is limited to feeds {scope!r}, which matches no feed",
                    rule.location,
                    "use a feed's name or tag:<a tag of some feed>",
                )


def _store_url(node: YamlNode, base: Path) -> str:
    url = node.text("store", expand_env=True).strip()
    if url.startswith("sqlite:///"):
        file = url.removeprefix("sqlite:///")
        if file != ":memory:" and not file.startswith("/"):
            return "sqlite:///" + str((base / file).resolve())
        return url
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql+psycopg://"):
        return url
    raise node.error(
        f"unsupported store URL {url!r}",
        "use sqlite:///path/to/watcher.db or postgresql+psycopg://user@host/dbname",
    )


def _default_store(base: Path) -> str:
    return "sqlite:///" + str((base / "var" / "watcher.db").resolve())


def _duration(node: YamlNode, what: str) -> timedelta:
    try:
        value = parse_duration(node.scalar_value())
    except ValueError as exc:
        raise node.error(f"{what}: {exc}") from None
    if value < MIN_INTERVAL and what in {"interval", "tick"}:
        raise node.error(f"{what} must be at least 1s")
    return value


def _fetch_settings(items: Mapping[str, YamlNode], inherited: FetchSettings) -> FetchSettings:
    changes: dict[str, object] = {}
    if "timeout" in items:
        timeout = _duration(items["timeout"], "timeout").total_seconds()
        if timeout <= 0:
            raise items["timeout"].error("timeout must be more than 0s")
        changes["timeout"] = timeout
    if "max_bytes" in items:
        try:
            changes["max_bytes"] = parse_size(items["max_bytes"].scalar_value())  # type: ignore[arg-type]
        except ValueError as exc:
            raise items["max_bytes"].error(f"max_bytes: {exc}") from None
    if "allow_private_networks" in items:
        changes["allow_private_networks"] = items["allow_private_networks"].boolean(
            "allow_private_networks"
        )
    if "max_redirects" in items:
        changes["max_redirects"] = items["max_redirects"].integer("max_redirects")
    if "proxy" in items:
        changes["proxy"] = items["proxy"].text("proxy", expand_env=True).strip() or None
    if "headers" in items:
        changes["headers"] = tuple(
            (name, value.text(f"header {name}", expand_env=True))
            for name, value in items["headers"].items("headers").items()
        )
    if "auth" in items:
        auth = items["auth"].items("auth", _AUTH_KEYS)
        if set(auth) != _AUTH_KEYS:
            raise items["auth"].error(
                "auth needs a user and a password", "password: ${FEED_PASSWORD}"
            )
        changes["auth"] = (
            auth["user"].text("user", expand_env=True),
            auth["password"].text("password", expand_env=True),
        )
    settings = dataclasses.replace(inherited, **changes)  # type: ignore[arg-type]
    problem = fetch_settings_problem(settings)
    if problem is not None:
        node = next(iter(items.values()))
        raise ConfigError(f"fetch settings: {problem}", node.location)
    return settings


def _schedule(items: Mapping[str, YamlNode], inherited: _Schedule) -> _Schedule:
    changes: dict[str, object] = {}
    for key in ("interval", "min_interval", "max_interval"):
        if key in items:
            changes[key] = _duration(items[key], key)
    if "adaptive" in items:
        changes["adaptive"] = items["adaptive"].boolean("adaptive")
    return dataclasses.replace(inherited, **changes)  # type: ignore[arg-type]


def _feed_nodes(top: Mapping[str, YamlNode], config_path: Path) -> list[tuple[YamlNode, Path]]:
    """The feeds: entries of the config and of the files it includes, with their base dirs."""
    nodes = [(node, config_path.parent) for node in _elements(top.get("feeds"), "feeds")]
    for include in top["include"].string_or_list("include") if "include" in top else []:
        file = (config_path.parent / include.text("include")).resolve()
        if not file.is_file():
            raise include.error(f"included file not found: {file}")
        included = load_yaml(file).items(f"the included file {file.name}", _INCLUDED_CONFIG_KEYS)
        nodes += [(node, file.parent) for node in _elements(included.get("feeds"), "feeds")]
    return nodes


def _elements(node: YamlNode | None, what: str) -> list[YamlNode]:
    return node.elements(what) if node is not None else []


def _feeds(
    nodes: list[tuple[YamlNode, Path]], schedule: _Schedule, fetch: FetchSettings
) -> tuple[FeedConfig, ...]:
    feeds: list[FeedConfig] = []
    seen: dict[str, Location] = {}
    for node, base in nodes:
        items = node.items("a feed", _FEED_KEYS)
        if "url" not in items:
            raise node.error("a feed needs a url", "e.g. - {name: BBC World, url: https://...}")
        url = _feed_url(items["url"], base)
        name = items["name"].text("the feed name").strip() if "name" in items else url
        if not _NAME.fullmatch(name):
            raise items["name"].error(f"feed name {name!r} is empty or has control characters")
        if name in seen:
            raise node.error(f"feed {name!r} is configured twice (first at {seen[name]})")
        seen[name] = node.location
        tags = tuple(
            tag.text("a tag").strip()
            for tag in (items["tags"].string_or_list("tags") if "tags" in items else [])
        )
        own = _schedule(items, schedule)
        minimum = own.min_interval or min(own.interval, timedelta(minutes=5))
        maximum = own.max_interval or max(own.interval, timedelta(hours=6))
        if own.adaptive and not minimum <= own.interval <= maximum:
            raise node.error(
                f"feed {name!r}: interval must lie between min_interval and max_interval"
            )
        feed_fetch = items["fetch"].items("fetch", _FETCH_KEYS) if "fetch" in items else {}
        feeds.append(
            FeedConfig(
                name=name,
                url=url,
                interval=own.interval,
                tags=tags,
                fetch=_fetch_settings(feed_fetch, fetch),
                adaptive=own.adaptive,
                min_interval=minimum,
                max_interval=maximum,
            )
        )
    return tuple(feeds)


def _feed_url(node: YamlNode, base: Path) -> str:
    url = node.text("url", expand_env=True).strip()
    if url.startswith("file:"):
        raw = url.removeprefix("file://") if url.startswith("file://") else url[5:]
        path = (base / raw).resolve()
        if not path.is_file():
            raise node.error(f"feed file not found: {path}")
        return path.as_uri()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise node.error(
            f"feed url must be http(s):// or file:, got {url!r}",
            "e.g. https://example.org/feed.xml or file:../seeds/sample-feed.xml",
        )
    return url


def _targets(node: YamlNode | None) -> tuple[dict[str, str], dict[str, TargetPolicy]]:
    """notify: name -> an Apprise URL, or a mapping with url, max, quiet and template."""
    targets: dict[str, str] = {}
    policies: dict[str, TargetPolicy] = {}
    if node is None:
        return targets, policies
    problems = check_target_urls(_target_urls(node))  # at once: the check may start a process
    for name, value in node.items("notify").items():
        items = value.items(f"notify target {name}", _TARGET_KEYS) if not value.is_scalar() else {}
        url_node = items.get("url", value)
        if not url_node.is_scalar():
            raise value.error(f"notify target {name!r} needs a url")
        url = url_node.text(f"notify target {name}", expand_env=True).strip()
        problem = problems[url] if url in problems else check_target_url(url)
        if problem:
            raise url_node.error(
                f"notify target {name!r}: {problem}",
                "use an Apprise URL, e.g. mailtos://user:pass@smtp.example.org "
                "or json://hooks.example.org/path",
            )
        targets[name] = url
        policies[name] = TargetPolicy(
            max=_parsed(items["max"], "max", parse_rate_limit) if "max" in items else None,
            quiet=_parsed(items["quiet"], "quiet", parse_quiet_hours) if "quiet" in items else None,
            template=_template(items["template"]) if "template" in items else None,
        )
    return targets, policies


def _target_urls(node: YamlNode) -> list[str]:
    """The URLs of notify: that can be read; _targets reports the others' mistakes in order."""
    urls: list[str] = []
    for name, value in node.items("notify").items():
        try:
            items = (
                value.items(f"notify target {name}", _TARGET_KEYS) if not value.is_scalar() else {}
            )
            url_node = items.get("url", value)
            if url_node.is_scalar():
                urls.append(url_node.text(f"notify target {name}", expand_env=True).strip())
        except ConfigError:
            continue
    return urls


def _parsed(node: YamlNode, what: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(node.text(what))
    except ValueError as exc:
        raise node.error(f"{what}: {exc}") from None


def _template(node: YamlNode) -> TemplateSource:
    """title/body template source, compiled and test-rendered now so mistakes show at load."""
    from watcher.render import TemplateError  # with Jinja2, which compile_template loads

    items = node.items("template", _TEMPLATE_KEYS)
    sources: dict[str, str] = {}
    for part, source_node in items.items():
        source = source_node.text(f"the {part} template")
        try:
            compile_template(source, part="title" if part == "title" else "body")
        except TemplateError as exc:
            where = (
                source_node.offset_location(_line_offset(source, exc.lineno))
                if exc.lineno
                else source_node.location
            )
            raise ConfigError(f"{part} template: {exc.message}", where) from None
        sources[part] = source
    return TemplateSource(title=sources.get("title"), body=sources.get("body"))


def _line_offset(source: str, lineno: int) -> int:
    """The offset of the start of 1-based line `lineno` in `source`."""
    offset = 0
    for _ in range(lineno - 1):
        found = source.find("\n", offset)
        if found < 0:
            break
        offset = found + 1
    return offset


def _delivery(node: YamlNode | None) -> DeliverySettings:
    if node is None:
        return DeliverySettings()
    items = node.items("delivery", _DELIVERY_KEYS)
    defaults = DeliverySettings()
    return DeliverySettings(
        max_attempts=items["max_attempts"].integer("max_attempts", 1)
        if "max_attempts" in items
        else defaults.max_attempts,
        retry=_duration(items["retry"], "retry") if "retry" in items else defaults.retry,
        max_retry=_duration(items["max_retry"], "max_retry")
        if "max_retry" in items
        else defaults.max_retry,
        max_age=_duration(items["max_age"], "max_age") if "max_age" in items else defaults.max_age,
    )


def _metrics_listen(node: YamlNode) -> tuple[str, int] | None:
    items = node.items("metrics", _METRICS_KEYS)
    if "listen" not in items:
        return None
    text = items["listen"].text("listen").strip()
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise items["listen"].error(
            f"metrics listen must be HOST:PORT, got {text!r}", "e.g. 127.0.0.1:9464"
        )
    return host, int(port)
