"""The fake group hands people's messages to bots by Telegram's privacy-mode rules (the fleet test relies on it)."""

from __future__ import annotations

from support.fake_telegram_group import FakeBot, FakeTelegramGroup


def texts(bot: FakeBot) -> list[str]:
    return [u["message"]["text"] for u in bot.updates if "message" in u]


def test_privacy_mode_on_gets_only_what_is_meant_for_the_bot() -> None:
    group = FakeTelegramGroup()
    one, two = group.add_bot("1:A", "one_bot", privacy=True), group.add_bot("2:B", "two_bot", privacy=True)
    open_ = group.add_bot("3:C", "open_bot", privacy=False)
    for text in ("health check web-2", "/health@two_bot", "@one_bot health", "/status"):
        group.say(text)
    assert texts(one) == ["@one_bot health"]  # "/status": no bot has spoken yet, so nobody in privacy mode
    assert texts(two) == ["/health@two_bot"]
    assert texts(open_) == ["health check web-2", "/health@two_bot", "@one_bot health", "/status"]


def test_a_general_command_goes_to_the_last_bot_that_spoke() -> None:
    group = FakeTelegramGroup()
    one, two = group.add_bot("1:A", "one_bot", privacy=True), group.add_bot("2:B", "two_bot", privacy=True)
    group.last_bot = "two_bot"
    group.say("/health")
    assert (texts(one), texts(two)) == ([], ["/health"])


def test_a_button_press_goes_only_to_the_bot_that_sent_the_message() -> None:
    group = FakeTelegramGroup()
    one, two = group.add_bot("1:A", "one_bot"), group.add_bot("2:B", "two_bot")
    keyboard = {"inline_keyboard": [[{"text": "Approve", "callback_data": "ap:2"}]]}
    message = {"message_id": 5, "from": one.user, "chat": group.chat, "text": "x", "reply_markup": keyboard}
    group.press(message)
    assert [u["callback_query"]["data"] for u in one.updates] == ["ap:2"] and two.updates == []
    assert "ops: presses [Approve] under one_bot's message #5" in group.transcript()
