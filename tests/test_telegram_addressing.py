"""Which chat messages a host's healer answers when several hosts' bots share one group (issue 17)."""

from __future__ import annotations

import pytest

from healer.core.enums import Unaddressed
from healer.telegram.addressing import Action, Addressed, Target, address, hint_text, names_of, route
from healer.telegram.render import with_host

NAMES = names_of("web-1.example.com", ["db-primary"])
BOT = "healer_web1_bot"


def test_names_are_the_host_its_short_name_and_aliases() -> None:
    assert NAMES == {"web-1.example.com", "web-1", "db-primary"}
    assert names_of("10.0.0.5", []) == {"10.0.0.5"}  # an address has no short name
    assert names_of("", [" "]) == frozenset()


@pytest.mark.parametrize(
    ("text", "target", "rest"),
    [
        ("health check web-1", Target.MINE, "health check"),
        ("health check WEB-1.example.com", Target.MINE, "health check"),
        ("health check web-2", Target.OTHER, "health check"),
        ("/health web-2", Target.OTHER, "/health"),
        ("show errors 6h on web-1", Target.MINE, "show errors 6h"),
        ("explain 12 db-primary", Target.MINE, "explain 12"),
        ("web-2: health", Target.OTHER, "health"),
        ("web-1: fix errors", Target.MINE, "fix errors"),
        ("fix errors on all", Target.ALL, "fix errors"),
        ("status all hosts", Target.ALL, "status"),
        ("health everyone?", Target.ALL, "health"),
        ("helth web-1", Target.MINE, "helth"),  # the parser's typo tolerance still applies
        ("health", Target.NONE, "health"),
        ("/health", Target.NONE, "/health"),
        ("show errors 6h", Target.NONE, "show errors 6h"),
        # Pasted lines and talk stay what they are, even when they end in a word.
        ("connection refused by all", Target.NONE, "connection refused by all"),
        ("ERROR: disk full on web-2", Target.NONE, "ERROR: disk full on web-2"),
        ("looking at it now", Target.NONE, "looking at it now"),
    ],
)
def test_address_by_host_name(text: str, target: Target, rest: str) -> None:
    assert address(text, names=NAMES, bot_username=BOT) == Addressed(target, rest)


@pytest.mark.parametrize(
    ("text", "target", "rest"),
    [
        ("/health@healer_web1_bot", Target.MINE, "/health"),
        ("/health@Healer_Web1_Bot", Target.MINE, "/health"),
        ("/errors@healer_web1_bot 6h", Target.MINE, "/errors 6h"),
        ("/health@healer_web2_bot", Target.OTHER, "/health"),
        ("@healer_web1_bot health", Target.MINE, "health"),
        ("@healer_web2_bot, health", Target.OTHER, "health"),
        ("health @healer_web1_bot", Target.MINE, "health"),
    ],
)
def test_address_by_bot(text: str, target: Target, rest: str) -> None:
    assert address(text, names=NAMES, bot_username=BOT) == Addressed(target, rest, by_bot=True)


def _route(text: str, *, group: bool = True, unaddressed: Unaddressed = Unaddressed.HINT) -> tuple[Action, str]:
    r = route(text, names=NAMES, bot_username=BOT, group=group, unaddressed=unaddressed)
    return r.action, r.text


def test_a_group_answers_what_names_this_host_or_all() -> None:
    assert _route("health check web-1") == (Action.ANSWER, "health check")
    assert _route("fix errors on all") == (Action.ANSWER, "fix errors")
    assert _route(f"/status@{BOT}") == (Action.ANSWER, "/status")


def test_a_group_leaves_other_hosts_commands_alone() -> None:
    for text in ("health check web-2", "/health@healer_web2_bot", "web-3: fix"):
        assert _route(text)[0] is Action.IGNORE, text


@pytest.mark.parametrize(
    ("unaddressed", "command", "talk"),
    [
        (Unaddressed.ANSWER, Action.ANSWER, Action.ANSWER),  # the only healer: as before issue 17
        (Unaddressed.HINT, Action.HINT, Action.IGNORE),
        (Unaddressed.IGNORE, Action.IGNORE, Action.IGNORE),
    ],
)
def test_a_group_command_naming_nobody(unaddressed: Unaddressed, command: Action, talk: Action) -> None:
    assert _route("/health", unaddressed=unaddressed)[0] is command
    assert _route("looking at it now", unaddressed=unaddressed)[0] is talk


def test_a_private_chat_answers_everything_but_another_bots_command() -> None:
    for text in ("health", "looking at it now"):
        assert _route(text, group=False, unaddressed=Unaddressed.IGNORE)[0] is Action.ANSWER, text
    assert _route("health check web-1", group=False) == (Action.ANSWER, "health check")
    assert _route("/health@healer_web2_bot", group=False) == (Action.ELSEWHERE, "/health")


def test_outside_a_fleet_chat_a_last_word_is_an_argument_not_a_host() -> None:
    """One healer, no list of other hosts: "errors banana" gets the usage of errors, as before."""
    assert _route("errors banana", group=False) == (Action.ANSWER, "errors banana")
    assert _route("errors banana", unaddressed=Unaddressed.ANSWER) == (Action.ANSWER, "errors banana")
    assert _route("errors banana", unaddressed=Unaddressed.HINT)[0] is Action.IGNORE  # a fleet chat: web "banana"


def test_the_hint_names_this_bot_and_host() -> None:
    text = hint_text("web-1", BOT)
    assert f"/health@{BOT}" in text and '"health web-1"' in text and '"health all"' in text


def test_the_host_prefix_is_escaped_and_absent_without_a_host() -> None:
    assert with_host("web-1", "<b>x</b>") == "<b>[web-1]</b> <b>x</b>"
    assert with_host("a<b", "x") == "<b>[a&lt;b]</b> x"
    assert with_host("", "x") == "x"
