"""Property tests: loaders raise only healer's own errors; fingerprints ignore masked fields."""

from __future__ import annotations

import tempfile
from pathlib import Path
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healer.core.errors import ConfigError, HealerError, ParamError, PatternError
from healer.remedy.registry import parse_action_sections
from healer.rules.fingerprint import normalise
from healer.rules.patterns import PATTERN_KEYS, build_pattern, load_file
from healer.settings.load import validate

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=20))
values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8
)
pattern_dicts = st.dictionaries(st.sampled_from(sorted(PATTERN_KEYS)), values, max_size=8).map(
    lambda d: {"id": "p1", "regex": "err (?P<g>x+)", **d}
)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


@FAST
@given(pattern_dicts)
def test_build_pattern_raises_only_documented_errors(raw: dict) -> None:
    try:
        build_pattern(raw, "f.yaml", 1, None)
    except (ValueError, ParamError):
        pass


@FAST
@given(st.text(max_size=300))
def test_load_file_raises_only_pattern_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "p.yaml"
        p.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            load_file(p)
        except PatternError:
            pass


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "state_dir",
                "sources",
                "engine",
                "telegram",
                "metrics",
                "health",
                "webhooks",
                "actions",
                "log_level",
                "kill_switch",
            ]
        ),
        values,
        max_size=4,
    )
)
def test_config_validate_raises_only_config_error(raw: dict) -> None:
    try:
        validate(raw, "/tmp/hx/config.yaml", {})
    except ConfigError:
        pass
    except HealerError as exc:
        raise AssertionError(f"{type(exc).__name__} escaped validate: {exc}") from None


@FAST
@given(
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.uuids(),
    st.uuids(),
    st.tuples(*[st.integers(0, 255)] * 4),
    st.tuples(*[st.integers(0, 255)] * 4),
)
def test_fingerprint_stable_under_masked_fields(
    n1: int, n2: int, u1: UUID, u2: UUID, ip1: tuple[int, ...], ip2: tuple[int, ...]
) -> None:
    def msg(n: int, u: object, ip: tuple[int, ...]) -> str:
        return f"timeout after {n} ms on request {u} from {'.'.join(map(str, ip))} retry #{n % 7}"

    assert normalise(msg(n1, u1, ip1)) == normalise(msg(n2, u2, ip2))


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            ["command", "restart", "pip_install", "git_sync", "disk_cleanup", "set_config", "restore_file"]
        ),
        st.dictionaries(
            st.sampled_from(
                [
                    "commands",
                    "units",
                    "repos",
                    "files",
                    "dirs",
                    "rules",
                    "python",
                    "allowed",
                    "constraints",
                    "manager",
                    "timeout",
                    "max_delete_bytes",
                    "min_free_percent",
                    "revert_after",
                    "key",
                ]  # fmt: skip
            ),
            values,
            max_size=4,
        ),
        max_size=3,
    )
)
def test_action_sections_raise_only_config_error(raw: dict) -> None:
    """Every action's pydantic settings model, through the registry as the ruleset calls it."""
    try:
        parse_action_sections(raw, "/tmp/hx/config.yaml")
    except ConfigError as exc:
        assert exc.path == "/tmp/hx/config.yaml" and exc.key.startswith("actions."), exc
