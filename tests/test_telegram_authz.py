"""The person gate's rules without a daemon: the admin list's cache and failing closed, and that
no authorisation key can come from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from telegram.error import NetworkError

from healer.core.clock import FakeClock
from healer.core.errors import ConfigError
from healer.settings.load import load_settings
from healer.settings.schema import TelegramSettings
from healer.telegram.authz import Authz, Grant

GROUP = -100777


class Admins:
    def __init__(self) -> None:
        self.asked = 0
        self.ids = frozenset({5})
        self.down = False

    async def __call__(self, chat_id: int) -> frozenset[int]:
        self.asked += 1
        if self.down:
            raise NetworkError("Bad Gateway")
        return self.ids


async def test_group_admins_are_cached_for_the_ttl_and_unreadable_means_no() -> None:
    clock = FakeClock()
    admins = Admins()
    s = TelegramSettings(allowed_chat_ids=(GROUP, 42), allowed_user_ids=(9,), allow_chat_admins=True, admins_ttl=60)
    authz = Authz(lambda: s, clock, admins)
    assert (await authz.may_command(GROUP, "supergroup", 5)).grant is Grant.CHAT_ADMIN
    assert (await authz.may_command(GROUP, "supergroup", 6)).grant is Grant.NONE
    assert admins.asked == 1  # the second look used the cached list
    assert (await authz.may_command(GROUP, "supergroup", 9)).grant is Grant.LISTED
    assert (await authz.may_command(42, "private", 42)).grant is Grant.PRIVATE_CHAT
    assert (await authz.may_command(42, "private", 43)).grant is Grant.NONE  # not that chat's person
    clock.advance(61)
    admins.down = True
    no = await authz.may_command(GROUP, "supergroup", 5)
    assert no.grant is Grant.NONE and "could not be read" in no.why
    admins.down = False
    assert (await authz.may_command(GROUP, "supergroup", 5)).allowed  # a failure is not cached
    assert admins.asked == 3


async def test_without_allow_chat_admins_a_group_admin_is_just_a_member() -> None:
    admins = Admins()
    s = TelegramSettings(allowed_chat_ids=(GROUP,))
    verdict = await Authz(lambda: s, FakeClock(), admins).may_command(GROUP, "supergroup", 5)
    assert verdict.grant is Grant.NONE and verdict.why == "not in telegram.allowed_user_ids"
    assert admins.asked == 0


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("HEALER__TELEGRAM__ALLOWED_USER_IDS", "telegram.allowed_user_ids"),
        ("HEALER__TELEGRAM__ALLOW_CHAT_ADMINS", "telegram.allow_chat_admins"),
        ("HEALER__TELEGRAM__ADMINS_TTL", "telegram.admins_ttl"),
        ("HEALER__TELEGRAM", "telegram"),
    ],
)
def test_authorisation_keys_cannot_come_from_the_environment(tmp_path: Path, variable: str, key: str) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("state_dir: ./state\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, {variable: "[1]"}, dotenv=False)
    assert f"{key}: cannot be set from the environment or .env" in str(err.value)


def test_user_ids_must_be_integers(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("telegram:\n  allowed_user_ids: ['@alice']\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, {}, dotenv=False)
    assert "telegram.allowed_user_ids[0]" in str(err.value) and "integer Telegram user ids" in str(err.value)
