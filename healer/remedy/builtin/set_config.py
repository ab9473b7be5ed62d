"""``set_config``: set one allowlisted key to one allowlisted value in a ``.env`` or YAML file.

The motivating fix is a model fallback: on HTTP 429 set ``MODEL=local-fallback``
and put it back later (``revert_after``). File, key and value may come from the
log line, so all three are looked up in the config allowlist; nothing outside
it is ever written.

``.env`` files are edited line by line so comments, ordering and every other
line survive byte for byte. YAML files go through ``safe_load``/``safe_dump``,
which drops comments and may reflow the file: that is the price of not
writing a YAML editor; undo still restores the exact original bytes from the
backup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
import yaml
from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from healer.core.errors import ActionError, ActionRefused
from healer.remedy.atomic import FileMeta, atomic_write, backup_file, file_meta, restore_backup, sha256
from healer.remedy.base import JSON, Action, ActionContext, VerifyResult, register
from healer.remedy.common import pick
from healer.settings.fields import AbsPath, Duration, Model, required
from healer.settings.validation import Problem, validate_model

log = structlog.get_logger("healer.remedy.builtin.set_config")

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$", re.ASCII)
YAML_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", re.ASCII)
# Values written unquoted into a .env; anything else gets quoted.
ENV_BARE = re.compile(r"^[A-Za-z0-9_./:@+,=-]*$", re.ASCII)
Scalar = str | int | float | bool


def scalar_text(value: Scalar) -> str:
    """How a param (always text) names a config value: YAML booleans read as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _allowed_values(raw: Any) -> Any:
    if not isinstance(raw, list) or not raw:
        raise ValueError("expected a non-empty list of allowed values")
    for v in raw:
        if isinstance(v, dict | list) or v is None:
            raise ValueError(f"allowed values must be scalars, got {v!r}")
    return tuple(raw)


class FileSpec(Model):
    path: AbsPath
    # Default: yaml for .yaml/.yml, else env.
    format: Literal["env", "yaml"] = Field(default="", validate_default=True)
    keys: Annotated[
        Mapping[str, Annotated[tuple[Scalar, ...], BeforeValidator(_allowed_values)]],
        required("list the keys healer may set, e.g. {MODEL: [local-fallback]}"),
    ]
    revert_after: Duration | None = None

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, v: Any, info: ValidationInfo) -> Any:
        path = info.data.get("path")
        return v or ("yaml" if path is not None and path.suffix in (".yaml", ".yml") else "env")

    @field_validator("keys", mode="after")
    @classmethod
    def _keys(cls, v: Mapping[str, tuple[Scalar, ...]], info: ValidationInfo) -> Mapping[str, tuple[Scalar, ...]]:
        fmt = info.data.get("format", "env")
        for key, values in v.items():
            if not (ENV_KEY if fmt == "env" else YAML_KEY).match(key):
                raise Problem(key, f"{key!r} is not a valid {fmt} key name")
            for value in values:
                if fmt == "env" and any(c in str(value) for c in "\n\r\"'\\$`\x00"):
                    raise Problem(key, f"value {value!r} has a quote, backslash, $, ` or newline")
        return v


class SetConfigSettings(Model):
    files: Annotated[Mapping[str, FileSpec], required("list the files: {name: {path, format, keys}}")]

    @model_validator(mode="before")
    @classmethod
    def _default_revert(cls, raw: Any) -> Any:
        """A top-level ``revert_after`` is the default of every file that sets none."""
        if not isinstance(raw, dict) or not isinstance(raw.get("files"), dict):
            return raw
        raw = dict(raw)
        default = raw.pop("revert_after", None)
        if default:
            raw["files"] = {
                name: {"revert_after": default, **spec} if isinstance(spec, dict) else spec
                for name, spec in raw["files"].items()
            }
        return raw


# ---------------------------------------------------------------- .env editing


def _env_quote(value: str, quote: str) -> str:
    if quote:
        return f"{quote}{value}{quote}"
    return value if ENV_BARE.match(value) else f'"{value}"'


def _env_line_re(key: str) -> re.Pattern[str]:
    return re.compile(rf"^(\s*(?:export\s+)?{re.escape(key)}\s*=\s*)(.*?)(\r?\n)?$")


def env_get(data: str, key: str) -> str | None:
    """The last assignment wins, as in every .env loader."""
    found: str | None = None
    pat = _env_line_re(key)
    for line in data.splitlines(keepends=True):
        m = pat.match(line)
        if m:
            found = _env_unquote(m.group(2))
    return found


def _env_unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    # An unquoted value ends at an inline comment.
    return raw.split(" #", 1)[0].rstrip()


def env_set(data: str, key: str, value: str) -> str:
    """Rewrite only the last ``KEY=`` line (keeping ``export``, quoting style, line ending)."""
    lines = data.splitlines(keepends=True)
    pat = _env_line_re(key)
    for i in range(len(lines) - 1, -1, -1):
        m = pat.match(lines[i])
        if m:
            old = m.group(2).strip()
            quote = old[0] if len(old) >= 2 and old[0] == old[-1] and old[0] in "\"'" else ""
            lines[i] = f"{m.group(1)}{_env_quote(value, quote)}{m.group(3) or ''}"
            return "".join(lines)
    sep = "" if not data or data.endswith("\n") else "\n"
    return f"{data}{sep}{key}={_env_quote(value, '')}\n"


# ---------------------------------------------------------------- YAML editing


def _yaml_load(data: str, path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(data) if data.strip() else {}
    except yaml.YAMLError as exc:
        raise ActionError(f"{path}: not valid YAML ({exc}); fix it or restore it before setting keys") from None
    if not isinstance(doc, dict):
        raise ActionError(f"{path}: the top level is not a mapping; cannot set a key in it")
    return doc


def yaml_get(doc: Mapping[str, Any], key: str) -> Any:
    node: Any = doc
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def yaml_set(doc: dict[str, Any], key: str, value: Scalar, path: Path) -> None:
    parts = key.split(".")
    node: Any = doc
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ActionError(f"{path}: {part!r} in {key!r} is not a mapping; cannot set a key under it")
        node = nxt
    node[parts[-1]] = value


@register
class SetConfigAction(Action):
    name = "set_config"
    needs_root = False
    reversible = True
    param_keys = frozenset({"file", "key", "value"})
    required_params = frozenset({"key", "value"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> SetConfigSettings:
        return validate_model(SetConfigSettings, raw, where)

    # ------------------------------------------------------------ lookups

    def _resolve(self, ctx: ActionContext) -> tuple[str, FileSpec, str, Scalar]:
        """File, key and value from the (hostile) params, each found in the allowlist or refused."""
        settings: SetConfigSettings | None = ctx.settings
        if settings is None:
            raise ActionRefused("set_config has no settings (actions.set_config.files)")
        fname, spec = pick(settings.files, ctx.params.get("file", ""), "actions.set_config.files")
        key = ctx.params.get("key", "")
        if key not in spec.keys:
            raise ActionRefused(f"key {key!r} is not allowlisted for file {fname!r}")
        wanted = ctx.params.get("value", "")
        for allowed in spec.keys[key]:
            if scalar_text(allowed) == wanted:
                return fname, spec, key, allowed
        raise ActionRefused(f"value {wanted!r} is not allowlisted for {fname}:{key}")

    def target(self, ctx: ActionContext) -> str:
        settings: SetConfigSettings | None = ctx.settings
        try:
            if settings is not None:
                return f"file:{pick(settings.files, ctx.params.get('file', ''), '')[1].path}"
        except ActionRefused:
            pass
        return f"set_config:{ctx.params.get('file', '')}"

    def check(self, ctx: ActionContext) -> None:
        _, spec, _, _ = self._resolve(ctx)
        if spec.path.is_symlink():
            raise ActionRefused(f"{spec.path} is a symlink; configure the real file's path")
        if not spec.path.is_file():
            raise ActionRefused(f"{spec.path} does not exist; restore it first (restore_file)")

    @staticmethod
    def _current(spec: FileSpec, data: bytes, key: str) -> str | None:
        body = data.decode("utf-8")
        if spec.format == "env":
            return env_get(body, key)
        value = yaml_get(_yaml_load(body, spec.path), key)
        return None if value is None else scalar_text(value)

    @staticmethod
    def _render(spec: FileSpec, data: bytes, key: str, value: Scalar) -> bytes:
        body = data.decode("utf-8")
        if spec.format == "env":
            return env_set(body, key, scalar_text(value)).encode("utf-8")
        doc = _yaml_load(body, spec.path)
        yaml_set(doc, key, value, spec.path)
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True).encode("utf-8")

    # ------------------------------------------------------------ run

    def apply(self, ctx: ActionContext) -> JSON:
        self.check(ctx)
        fname, spec, key, value = self._resolve(ctx)
        try:
            before = spec.path.read_bytes()
        except (OSError, UnicodeDecodeError) as exc:
            raise ActionError(f"{spec.path}: cannot read ({exc})") from None
        old = self._current(spec, before, key)
        state: JSON = {
            "file": fname,
            "path": str(spec.path),
            "key": key,
            "old_value": old,
            "new_value": scalar_text(value),
            "changed": False,
            "backup": None,
            "revert_at": None,
        }
        if old == scalar_text(value):
            ctx.audit("set_config", {**state, "note": "already set; nothing written"})
            return state
        meta = file_meta(spec.path)
        assert meta is not None
        backup = backup_file(
            spec.path, ctx.state_dir / "backups", label=f"incident{ctx.incident_id}", now=ctx.clock.now()
        )
        new = self._render(spec, before, key, value)
        state.update(
            changed=True,
            backup=str(backup),
            sha_before=sha256(before),
            sha_after=sha256(new),
            meta={"mode": meta.mode, "uid": meta.uid, "gid": meta.gid},
            revert_at=(ctx.clock.now() + spec.revert_after) if spec.revert_after else None,
        )
        # The backup exists and the state names it before the file changes.
        ctx.checkpoint(state)
        try:
            atomic_write(spec.path, new, meta=meta)
        except OSError as exc:
            raise ActionError(f"{spec.path}: write failed ({exc}); original untouched, backup {backup}") from None
        ctx.audit("set_config", {k: state[k] for k in ("path", "key", "old_value", "new_value", "backup")})
        log.info("config_set", path=str(spec.path), key=key, value=scalar_text(value), backup=str(backup))
        return state

    def verify(self, ctx: ActionContext, state: JSON) -> VerifyResult:
        path = Path(state["path"])
        spec = ctx.settings.files[state["file"]]
        try:
            now = self._current(spec, path.read_bytes(), state["key"])
        except (OSError, UnicodeDecodeError, ActionError) as exc:
            return VerifyResult(False, f"{path}: unreadable after write ({exc})")
        ok = now == state["new_value"]
        return VerifyResult(ok, f"{state['key']}={now!r} in {path}")

    def undo(self, ctx: ActionContext, state: JSON) -> None:
        if not state.get("changed"):
            return
        path = Path(state["path"])
        backup = Path(state["backup"])
        if not backup.is_file():
            raise ActionError(f"cannot undo {path}: backup {backup} is gone")
        m = state["meta"]
        meta = FileMeta(int(m["mode"]), int(m["uid"]), int(m["gid"]))
        if path.exists():
            current = path.read_bytes()
            if sha256(current) != state["sha_after"]:
                # Someone edited the file after us: keep their version too, then restore.
                kept = backup_file(path, ctx.state_dir / "backups", label=f"incident{ctx.incident_id}-pre-undo")
                ctx.audit("set_config_undo_conflict", {"path": str(path), "kept": str(kept)})
                log.warning("undo_over_foreign_edit", path=str(path), kept=str(kept))
        restore_backup(backup, path, meta)
        ctx.audit("set_config_undo", {"path": str(path), "backup": str(backup)})
        log.info("config_restored", path=str(path), backup=str(backup))


__all__ = ["SetConfigAction", "SetConfigSettings", "env_get", "env_set"]
