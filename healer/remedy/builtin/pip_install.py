"""``pip_install``: install the allowlisted package behind a ``No module named 'x'`` error.

The module name comes straight from a log line, and ``pip install`` runs
arbitrary code from whatever it downloads, so this is the most dangerous
action healer has. The defences, all before any process starts:

* the text must be a plain ASCII dotted identifier: no option (``--index-url``),
  no URL or VCS spec (``git+https://``), no path (``../x``), no shell text,
  no look-alike Unicode (a Cyrillic "ie" standing in for the Latin "e" of "requests");
* only the top-level module maps to a package (``yaml.constructor`` ->
  ``yaml`` -> ``PyYAML``), and that package must be on ``allowed``, compared
  by its PEP 503 normalised name, so ``reqeusts`` is refused, not installed;
* index, find-links and pins come only from the config.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypedDict

import structlog
from pydantic import AfterValidator, BeforeValidator, ValidationInfo, field_validator, model_validator

from healer.core.enums import AuditKind, Confirm
from healer.core.errors import ActionError, ActionRefused, HostileValue, ParamError
from healer.remedy.apps import role_of
from healer.remedy.base import (
    Action,
    ActionContext,
    Confirmation,
    VerifyResult,
    placeholders,
    probe_timeout,
    register,
)
from healer.remedy.common import pick, screen_name
from healer.settings.fields import ActionModel, Flag, Items, Model, Name, Timeout
from healer.settings.validation import Problem, validate_model

log = structlog.get_logger("healer.remedy.builtin.pip_install")

PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", re.ASCII)
MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", re.ASCII)
_SPEC = r"(?:===?|~=|>=|<=|!=|<|>)\s*[A-Za-z0-9.*+!_-]+"
PIN = re.compile(rf"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*({_SPEC}(?:\s*,\s*{_SPEC})*)$", re.ASCII)
# The verify step imports by name passed as argv, so no log text is ever Python source.
IMPORT_CHECK = "import importlib, sys; importlib.import_module(sys.argv[1])"


def canonical(name: str) -> str:
    """PEP 503: ``PyYAML``, ``pyyaml`` and ``py_yaml`` are one project to pip and to the allowlist."""
    return re.sub(r"[-_.]+", "-", name).lower()


def screen(value: str, what: str) -> None:
    """Refuse text that is anything but a bare name; the reason names the trick that was tried.

    Every refusal but an empty value is ``HostileValue``: a name with an
    option dash, a URL, a path or look-alike letters is an injection
    attempt, and the engine escalates it as a security notice.
    """
    if not value:
        raise ActionRefused(f"{what} is empty")
    if not value.isascii():
        raise HostileValue(what, value, "has non-ASCII characters (look-alike letters?)")
    if value.startswith("-"):
        raise HostileValue(what, value, "looks like a command-line option")
    if "://" in value or value.lower().startswith(("git+", "hg+", "svn+", "bzr+", "file:")):
        raise HostileValue(what, value, "is a URL or VCS spec, not a name")
    if "/" in value or "\\" in value or ".." in value or value.startswith("~"):
        raise HostileValue(what, value, "looks like a path")
    if not PACKAGE_NAME.match(value):
        raise HostileValue(what, value, "is not a plain package/module name")


def _venv_python(raw: str) -> str:
    if not os.path.isabs(raw):
        raise ValueError("give the absolute path of the target venv's python")
    return raw


def _allowed(raw: Any) -> dict[str, str]:
    """canonical name -> the name as written in the config."""
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
        raise ValueError("list the package names healer may install, e.g. [PyYAML]")
    for name in raw:
        if not PACKAGE_NAME.match(name):
            raise ValueError(f"{name!r} is not a plain package name")
    return {canonical(name): name for name in raw}


def _index_url(raw: str) -> str:
    if not raw.startswith(("https://", "http://", "file://")):
        raise ValueError("expected an http(s):// or file:// URL")
    return raw


def _links(raw: Any) -> Any:
    return [] if raw is None else [raw] if isinstance(raw, str) else raw


def _constraints(raw: Any) -> Any:
    """``constraints``: a list of pins or the absolute path of a constraints file."""
    if raw is None:
        return None
    if isinstance(raw, str):
        if not os.path.isabs(raw):
            raise ValueError("a constraints file must be an absolute path")
        return raw
    if isinstance(raw, list):
        for pin in raw:
            if not (isinstance(pin, str) and PIN.match(pin)):
                raise ValueError(f"{pin!r} is not a pin like 'PyYAML==6.0.1'")
        return tuple(raw)
    raise ValueError("a list of pins or the path of a constraints file")


class PipVenv(Model):
    """One target venv: its interpreter and what may be installed into it."""

    python: Annotated[Name, AfterValidator(_venv_python)]
    allowed: Annotated[Mapping[str, str], BeforeValidator(_allowed)]  # canonical -> name as written
    packages: Mapping[str, str] = {}  # top-level module -> package (as written in allowed)
    constraints: Annotated[str | tuple[str, ...] | None, BeforeValidator(_constraints)] = None

    @field_validator("packages", mode="after")
    @classmethod
    def _packages_allowed(cls, v: Mapping[str, str], info: ValidationInfo) -> dict[str, str]:
        allowed: Mapping[str, str] = info.data.get("allowed") or {}
        out: dict[str, str] = {}
        for mod, pkg in v.items():
            if not MODULE_PATH.match(mod) or "." in mod:
                raise Problem(mod, "map a top-level module name to a package name")
            if canonical(pkg) not in allowed:
                raise Problem(mod, f"package {pkg!r} must also be listed in allowed")
            out[mod] = allowed[canonical(pkg)]
        return out

    @field_validator("constraints", mode="after")
    @classmethod
    def _pins_allowed(cls, v: str | tuple[str, ...] | None, info: ValidationInfo) -> str | tuple[str, ...] | None:
        allowed: Mapping[str, str] = info.data.get("allowed") or {}
        for pin in v if isinstance(v, tuple) else ():
            m = PIN.match(pin)  # matched by _constraints already
            if m is not None and canonical(m.group(1)) not in allowed:
                raise ValueError(f"{m.group(1)!r} is pinned but not in allowed")
        return v

    @property
    def pins(self) -> dict[str, str]:
        """canonical -> full requirement, e.g. ``pyyaml -> PyYAML==6.0.1``."""
        out: dict[str, str] = {}
        for pin in self.constraints if isinstance(self.constraints, tuple) else ():
            m = PIN.match(pin)
            assert m is not None  # checked at load
            out[canonical(m.group(1))] = (self.allowed or {})[canonical(m.group(1))] + m.group(2).replace(" ", "")
        return out

    @property
    def constraints_file(self) -> str | None:
        return self.constraints if isinstance(self.constraints, str) else None


class PipSettings(ActionModel, PipVenv):
    """The action's section: one venv at the top level, and/or named ones under ``venvs`` (apps add theirs)."""

    python: Annotated[Name, AfterValidator(_venv_python)] | None = None  # type: ignore[assignment]  # optional here
    allowed: Annotated[Mapping[str, str], BeforeValidator(_allowed)] | None = None  # type: ignore[assignment]
    venvs: Mapping[str, PipVenv] = {}
    index_url: Annotated[Name, AfterValidator(_index_url)] | None = None
    find_links: Annotated[Items[Name], BeforeValidator(_links)] = ()
    no_index: Flag = False
    timeout: Timeout = 300.0
    no_deps: Flag = False

    @model_validator(mode="after")
    def _some_venv(self) -> PipSettings:
        if not self.venvs and (self.python is None or self.allowed is None):
            missing = "python" if self.python is None else "allowed"
            raise Problem(missing, "give the target venv's python and the allowed packages (or name venvs)")
        return self

    def select(self, wanted: str) -> PipSettings:
        """These settings for the venv a (hostile) ``venv`` param names; the top-level one when none is named."""
        if self.python is not None and (not wanted or not self.venvs):
            if wanted and wanted != "default":
                screen_name(wanted, "actions.pip_install.venvs", "venv")
                raise ActionRefused(f"venv {wanted!r} is not in actions.pip_install.venvs")
            return self
        _, venv = pick(self.venvs, wanted, "actions.pip_install.venvs", param="venv")
        return self.model_copy(
            update={
                "python": venv.python,
                "allowed": venv.allowed,
                "packages": venv.packages,
                "constraints": venv.constraints,
                "venvs": {},
            }
        )

    def options(self) -> list[str]:
        opts: list[str] = []
        if self.no_index:
            opts.append("--no-index")
        if self.index_url:
            opts += ["--index-url", self.index_url]
        for link in self.find_links:
            opts += ["--find-links", link]
        if self.no_deps:
            opts.append("--no-deps")
        if self.constraints_file:
            opts += ["--constraint", self.constraints_file]
        return opts


class PipState(TypedDict):
    python: str
    package: str
    spec: str
    module: str | None
    was_installed: bool


@register
class PipInstallAction(Action[PipSettings, PipState]):
    name = "pip_install"
    reversible = True
    param_keys = frozenset({"module", "package", "venv"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> PipSettings:
        return validate_model(PipSettings, raw, where)

    @classmethod
    def validate_params(cls, params: Mapping[str, str], settings: Any = None) -> None:
        super().validate_params(params, settings)
        if ("module" in params) == ("package" in params):
            raise ParamError("pip_install: give exactly one of 'module' (e.g. '{module}') or 'package'")
        for key, value in params.items():
            if key != "venv" and not placeholders(value) and role_of(value) is None:
                try:
                    screen(value, key)
                except ActionRefused as exc:
                    raise ParamError(f"pip_install.{key}: {exc}") from None

    # ------------------------------------------------------------ resolve

    @staticmethod
    def _chosen(ctx: ActionContext, settings: PipSettings) -> tuple[PipSettings, str, Mapping[str, str]]:
        """The settings of the venv the ``venv`` param names, with its interpreter and allowlist."""
        chosen = settings.select(ctx.params.get("venv", ""))
        assert chosen.python is not None and chosen.allowed is not None  # select() returns a complete venv
        return chosen, chosen.python, chosen.allowed

    @classmethod
    def _resolve(cls, ctx: ActionContext, settings: PipSettings) -> tuple[str, str | None]:
        """(package as allowlisted, module to import or None), or ActionRefused."""
        settings, _, allowed = cls._chosen(ctx, settings)
        module = ctx.params.get("module")
        if module is not None:
            screen(module, "module")
            if not MODULE_PATH.match(module):
                raise ActionRefused(f"module {module!r} is not a dotted Python identifier")
            first = module.split(".", 1)[0]
            package = settings.packages.get(first, first)
            top: str | None = first
        else:
            package = ctx.params.get("package", "")
            screen(package, "package")
            top = None
        key = canonical(package)
        if key not in allowed:
            near = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (close to allowlisted {allowed[near[0]]!r}: typosquat?)" if near else ""
            raise ActionRefused(f"package {package!r} is not in actions.pip_install.allowed{hint}")
        return allowed[key], top

    def _target(self, ctx: ActionContext, settings: PipSettings) -> str:
        return f"venv:{self._chosen(ctx, settings)[1]}"

    def _check(self, ctx: ActionContext, settings: PipSettings) -> None:
        self._resolve(ctx, settings)
        python = self._chosen(ctx, settings)[1]
        if not os.access(python, os.X_OK) or not Path(python).is_file():
            raise ActionRefused(f"{python} is not an executable interpreter; check actions.pip_install.python")

    @staticmethod
    def _installed(ctx: ActionContext, python: str, package: str) -> bool:
        argv = [python, "-m", "pip", "show", "--disable-pip-version-check", package]
        return ctx.run(argv, step="pip_show", timeout=60).ok

    def _apply(self, ctx: ActionContext, settings: PipSettings) -> PipState:
        package, module = self._resolve(ctx, settings)
        settings, python, _ = self._chosen(ctx, settings)
        spec = settings.pins.get(canonical(package), package)
        state = PipState(
            python=python,
            package=package,
            spec=spec,
            module=module,
            was_installed=self._installed(ctx, python, package),
        )
        ctx.checkpoint(state)
        argv = [
            python,
            *("-m", "pip", "install", "--disable-pip-version-check", "--no-input"),
            *settings.options(),
            spec,
        ]
        res = ctx.run(argv, step="pip_install", timeout=settings.timeout, env={"PYTHONNOUSERSITE": "1"})
        if not res.ok:
            raise ActionError(f"pip install {spec} failed (rc {res.returncode}): {res.summary(300)}")
        log.info("pip_installed", package=spec, python=python, was_installed=state["was_installed"])
        return state

    def _verify(self, ctx: ActionContext, settings: PipSettings, state: PipState) -> VerifyResult:
        module = state.get("module")
        if not module:
            ok = self._installed(ctx, state["python"], state["package"])
            return VerifyResult(ok, f"{state['package']} {'is' if ok else 'is not'} installed")
        if not MODULE_PATH.match(module):  # state may come back from disk: check again
            return VerifyResult(False, f"refusing to import {module!r}")
        res = ctx.run([state["python"], "-c", IMPORT_CHECK, module], step="import_check", timeout=60)
        return VerifyResult(res.ok, f"import {module}: {'ok' if res.ok else res.summary(200)}")

    def _confirm(self, ctx: ActionContext, settings: PipSettings) -> Confirmation:
        """CONFIRMED when the module does not import in the target venv (or the package is not installed)."""
        package, top = self._resolve(ctx, settings)
        self._check(ctx, settings)
        settings, python, _ = self._chosen(ctx, settings)
        timeout = probe_timeout(settings.timeout)
        if top is None:
            argv = [python, "-m", "pip", "show", "--disable-pip-version-check", package]
            present, absent = f"{package} is installed", f"{package} is not installed"
        else:
            # The whole dotted name, as the app imports it ("yaml.constructor"); _resolve checked it.
            module = ctx.params["module"]
            argv = [python, "-c", IMPORT_CHECK, module]
            present, absent = f"{module} imports", f"import {module} fails"
        res = ctx.run(argv, step="confirm", timeout=timeout, env={"PYTHONNOUSERSITE": "1"})
        if res.timed_out:
            return Confirmation(Confirm.UNKNOWN, f"{python} did not answer in {timeout:g}s")
        if res.ok:
            return Confirmation(Confirm.REFUTED, f"{present} in {python}: the app runs another interpreter")
        return Confirmation(Confirm.CONFIRMED, f"{absent} in {python}: {res.summary(160)}")

    def undo(self, ctx: ActionContext, state: PipState) -> None:
        if state.get("was_installed", True):
            ctx.audit(AuditKind.PIP_UNDO, {"package": state.get("package"), "note": "was installed before; left alone"})
            return
        package = state["package"]
        screen(package, "package")
        res = ctx.run(
            [state["python"], "-m", "pip", "uninstall", "--disable-pip-version-check", "-y", package],
            step="pip_uninstall",
            timeout=120,
        )
        if not res.ok:
            raise ActionError(f"pip uninstall {package} failed (rc {res.returncode}): {res.summary(300)}")
