"""``healer setup DIR``: inspect an app directory and the host, and write the app's block.

Everything that can be read is read, never guessed: the venv from its
``pyvenv.cfg``, the packages from ``requirements*.txt``/``pyproject.toml``,
the checkout's upstream from git, the env file and its template, the
supervisord program or systemd unit whose working directory or command
points into the app, the program's log files, the local Redis and
PostgreSQL units and the addresses the app's env names. What cannot be read
(a fallback model) is asked, or left out with a note.

Nothing here changes the host; :func:`write_app` changes the config file
(atomically, with a backup), and only that.
"""

from __future__ import annotations

import configparser
import glob
import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from healer.core.proc import Runner
from healer.remedy.builtin.pip_install import canonical

# Import name -> distribution, for the well-known projects whose names differ
# (a missing module's package cannot be read from the venv: it is missing).
KNOWN_MODULES = {
    "yaml": "PyYAML",
    "PIL": "Pillow",
    "cv2": "opencv-python",
    "sklearn": "scikit-learn",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "jwt": "PyJWT",
    "magic": "python-magic",
    "Crypto": "pycryptodome",
    "OpenSSL": "pyOpenSSL",
    "google.protobuf": "protobuf",
    "psycopg2": "psycopg2-binary",
    "serial": "pyserial",
    "usb": "pyusb",
    "zmq": "pyzmq",
    "git": "GitPython",
    "telegram": "python-telegram-bot",
    "multipart": "python-multipart",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "slugify": "python-slugify",
}
TEMPLATES = (".env.example", ".env.sample", ".env.template", ".env.dist", "env.example")
REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
MODEL_KEY = re.compile(r"^\s*(?:export\s+)?([A-Z0-9_]*MODEL[A-Z0-9_]*)\s*=\s*['\"]?([^'\"#\s]+)", re.M)
PROVIDERS = ("openai", "anthropic", "gemini", "mistral", "groq", "cohere", "azure")
REDIS_UNITS = ("redis-server.service", "redis.service", "valkey-server.service", "valkey.service")
POSTGRES_UNITS = ("postgresql.service",)
UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
SUPERVISOR_CONFS = ("/etc/supervisor/supervisord.conf", "/etc/supervisord.conf")


@dataclass
class Found:
    """What setup learned: the app block, the extra config it needs, and what it could not infer."""

    name: str
    app: dict[str, Any] = field(default_factory=dict)
    restart: dict[str, Any] = field(default_factory=dict)  # actions.restart extras (supervisor_conf)
    notes: list[str] = field(default_factory=list)
    ask: dict[str, str] = field(default_factory=dict)  # model variable -> provider, whose fallback is unknown


def _venv(root: Path) -> Path | None:
    for name in (".venv", "venv", "env", ".env-venv"):
        if (root / name / "pyvenv.cfg").is_file():
            return root / name
    return None


def requirements(root: Path) -> list[str]:
    """Distribution names the app declares, in order, without duplicates."""
    names: list[str] = []
    for req in sorted(root.glob("requirements*.txt")):
        for line in req.read_text(errors="replace").splitlines():
            m = None if line.lstrip().startswith(("#", "-")) else REQ.match(line)
            if m:
                names.append(m.group(1))
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(errors="replace"))
        except tomllib.TOMLDecodeError:
            data = {}
        for dep in data.get("project", {}).get("dependencies", []) or []:
            m = REQ.match(dep) if isinstance(dep, str) else None
            if m:
                names.append(m.group(1))
    seen: set[str] = set()
    out = []
    for n in names:
        if n.lower() not in seen:
            seen.add(n.lower())
            out.append(n)
    return out


def _installed_modules(venv: Path, packages: Iterable[str]) -> dict[str, str]:
    """Import name -> package, for installed packages whose top-level module has another name."""
    wanted = {canonical(p): p for p in packages}
    out: dict[str, str] = {}
    for top in venv.glob("lib/python*/site-packages/*.dist-info/top_level.txt"):
        dist = top.parent.name.rsplit("-", 1)[0]
        pkg = wanted.get(canonical(dist))
        if pkg is None:
            continue
        for mod in top.read_text(errors="replace").split():
            if mod and not mod.startswith("_") and mod.lower() != re.sub(r"[-.]", "_", pkg).lower():
                out[mod] = pkg
    return out


def _modules(venv: Path | None, packages: Sequence[str]) -> dict[str, str]:
    canon = {canonical(p): p for p in packages}
    out = {mod: canon[key] for mod, pkg in KNOWN_MODULES.items() if (key := canonical(pkg)) in canon and "." not in mod}
    if venv is not None:
        out.update(_installed_modules(venv, packages))
    return out


def _git(root: Path, runner: Runner) -> dict[str, Any] | None:
    if not (root / ".git").exists():
        return None
    res = runner.run(["git", "-C", str(root), "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"])
    if not res.ok or "/" not in res.stdout.strip():
        return {"path": str(root)}
    remote, branch = res.stdout.strip().split("/", 1)
    return {"path": str(root), "remote": remote, "branch": branch}


def _env(root: Path) -> tuple[dict[str, Any] | None, str]:
    """The env_file entry, and the text to read model names and addresses from."""
    env = root / ".env"
    template = next((root / t for t in TEMPLATES if (root / t).is_file()), None)
    if template is None and not env.exists():
        return None, ""
    entry: dict[str, Any] = {"path": str(env)}
    if template is not None:
        entry["template"] = str(template)
    texts = [p.read_text(errors="replace") for p in (env, template) if p is not None and p.is_file()]
    return entry, "\n".join(texts)


def _models(text: str, fallbacks: Mapping[str, str], found: Found) -> dict[str, Any]:
    models: dict[str, Any] = {}
    notes = found.notes
    for key, value in dict(MODEL_KEY.findall(text)).items():
        provider = next((p for p in PROVIDERS if p in key.lower()), "")
        provider = provider or ("anthropic" if value.startswith("claude") else "openai" if "gpt" in value else "llm")
        if provider in models:
            continue
        fallback = fallbacks.get(provider)
        if fallback is None:
            found.ask[key] = provider
            notes.append(
                f"{key}={value}: no fallback model known for {provider}; "
                f"rerun with --fallback {provider}=<model> to let healer switch it on a rate limit"
            )
            continue
        models[provider] = {"key": key, "primary": value, "fallback": fallback}
    for provider in fallbacks.keys() - models.keys():
        notes.append(f"--fallback {provider}=...: no *MODEL* variable for it in the env file; not used")
    return models


def _address(text: str, names: Sequence[str], default: int) -> str | None:
    for name in names:
        m = re.search(rf"^\s*(?:export\s+)?{name}\s*=\s*['\"]?([^'\"\s#]+)", text, re.M)
        if not m:
            continue
        url = urlsplit(m.group(1))
        if url.hostname:
            return f"{url.hostname}:{url.port or default}"
    return None


def _unit_files(dirs: Sequence[str]) -> Iterable[Path]:
    for d in dirs:
        yield from sorted(Path(d).glob("*.service"))


def _systemd_unit(root: Path, dirs: Sequence[str]) -> str | None:
    pattern = re.compile(rf"^(?:WorkingDirectory|ExecStart)=\S*?{re.escape(str(root))}(?:/|\s|$)", re.M)
    for unit in _unit_files(dirs):
        try:
            if pattern.search(unit.read_text(errors="replace")):
                return unit.name
        except OSError:
            continue
    return None


def _present_unit(names: Sequence[str], dirs: Sequence[str]) -> str | None:
    return next((n for n in names for d in dirs if (Path(d) / n).exists()), None)


def _supervisor_programs(conf: Path) -> dict[str, dict[str, str]]:
    """program name -> its settings, from supervisord.conf and the files it includes."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    files = [conf]
    try:
        parser.read(conf)
    except configparser.Error:
        return {}
    if parser.has_option("include", "files"):
        for spec in parser.get("include", "files").split():
            files += [Path(p) for p in sorted(glob.glob(str(conf.parent / spec)))]
    programs: dict[str, dict[str, str]] = {}
    for f in files:
        sub = configparser.RawConfigParser(strict=False, interpolation=None)
        try:
            sub.read(f)
        except configparser.Error:
            continue
        for section in sub.sections():
            if section.startswith("program:"):
                programs[section.removeprefix("program:")] = dict(sub.items(section))
    return programs


def _supervised(root: Path, conf: Path | None) -> tuple[str | None, list[str], dict[str, dict[str, str]]]:
    """(the program running in ``root``, its log files, every program) from supervisord's config."""
    if conf is None or not conf.is_file():
        return None, [], {}
    programs = _supervisor_programs(conf)
    for name, opts in programs.items():
        where = opts.get("directory", "") + " " + opts.get("command", "")
        if str(root) in where:
            logs = [opts[k] for k in ("stdout_logfile", "stderr_logfile") if opts.get(k, "").startswith("/")]
            return name, logs, programs
    return None, [], programs


def _logs(root: Path, extra: Sequence[str]) -> list[str]:
    found = [str(root / d / "*.log") for d in ("logs", "log", "var/log") if any((root / d).glob("*.log"))]
    if any(root.glob("*.log")):
        found.append(str(root / "*.log"))
    return [*found, *(p for p in extra if not any(Path(p).match(g) for g in found))]


def inspect(
    root: Path,
    *,
    name: str | None = None,
    fallbacks: Mapping[str, str] | None = None,
    supervisor_conf: Path | None = None,
    unit_dirs: Sequence[str] = UNIT_DIRS,
    runner: Runner | None = None,
) -> Found:
    root = root.resolve()
    runner = runner or Runner()
    found = Found(name or re.sub(r"[^A-Za-z0-9_-]+", "-", root.name).strip("-") or "app")
    app = found.app
    conf = supervisor_conf or next((Path(c) for c in SUPERVISOR_CONFS if Path(c).is_file()), None)
    program, program_logs, programs = _supervised(root, conf)
    unit = _systemd_unit(root, unit_dirs)
    logs = _logs(root, program_logs)
    if logs:
        app["logs"] = logs
    else:
        found.notes.append(f"no log files under {root}: add apps.{found.name}.logs (or journald units)")
    if unit is not None:
        app["service"] = unit
        app["journald"] = [unit]
    elif program is not None:
        app["service"] = {"supervisor": program}
    else:
        found.notes.append("no systemd unit or supervisord program runs here: the app itself will not be restarted")
    venv = _venv(root)
    packages = requirements(root)
    if venv is not None:
        app["venv"] = str(venv)
        if packages:
            app["packages"] = packages
            modules = _modules(venv, packages)
            if modules:
                app["modules"] = modules
        else:
            found.notes.append("no requirements*.txt or pyproject dependencies: nothing may be pip-installed")
    checkout = _git(root, runner)
    if checkout is not None:
        app["checkout"] = checkout
        if "branch" not in checkout:
            found.notes.append("the checkout has no upstream branch: git_sync will refuse until it has one")
    env, text = _env(root)
    if env is not None:
        app["env_file"] = env
        models = _models(text, fallbacks or {}, found)
        if models:
            app["models"] = models
    for role, units, urls, port in (
        ("redis", REDIS_UNITS, ("REDIS_URL", "CELERY_BROKER_URL", "CACHE_URL"), 6379),
        ("postgres", POSTGRES_UNITS, ("DATABASE_URL", "POSTGRES_URL", "DB_URL"), 5432),
    ):
        dep_program = next((p for p in programs if p.lower().startswith(role[:5])), None)
        dep_unit = _present_unit(units, unit_dirs)
        address = _address(text, urls, port)
        if dep_unit is None and dep_program is None:
            if address is not None:
                found.notes.append(f"the app uses {role} at {address}, but no local {role} unit or program was found")
            continue
        if dep_program is None and address is None:
            # A host-wide unit alone says nothing about this app (every app on a database host would get
            # it); a program of the app's own supervisord, or the app's env naming the address, does.
            found.notes.append(
                f"{dep_unit} runs on this host, but the app's env names no {role} URL ({', '.join(urls)}):"
                f" not added; add apps.{found.name}.{role} by hand if the app uses it"
            )
            continue
        dep: dict[str, Any] = {"unit": dep_unit} if dep_unit is not None else {"supervisor": dep_program}
        dep["address"] = address or f"127.0.0.1:{port}"
        app[role] = dep
    if conf is not None and any(
        isinstance(v, dict) and "supervisor" in v for v in (app.get("service"), app.get("redis"), app.get("postgres"))
    ):
        found.restart["supervisor_conf"] = str(conf)
    return found


def set_timings(
    found: Found, *, stay_up: float | None = None, revert_after: float | None = None, grace: float | None = None
) -> None:
    """What inspecting cannot tell, given on the command line: how long a restarted service must stay up
    (the app's service and its Redis/PostgreSQL), when a fallback model goes back to the primary, and
    the restart's verify grace (``actions.restart.verify_grace``)."""
    app = found.app
    if stay_up is not None:
        if isinstance(app.get("service"), str):
            app["service"] = {"unit": app["service"]}
        for role in ("service", "redis", "postgres"):
            if isinstance(app.get(role), dict):
                app[role]["stay_up"] = stay_up
    if revert_after is not None:
        for switch in (app.get("models") or {}).values():
            switch["revert_after"] = revert_after
    if grace is not None:
        found.restart["verify_grace"] = grace


def block_text(found: Found) -> str:
    return yaml.safe_dump({"apps": {found.name: found.app}}, sort_keys=False, default_flow_style=False)


def write_with_backup(path: Path, text: str) -> None:
    """Replace ``path`` atomically (same directory, fsync, rename); the old bytes stay in ``<path>.bak``."""
    mode = 0o600
    if path.exists():
        mode = path.stat().st_mode & 0o777
        shutil.copy2(path, path.with_name(path.name + ".bak"))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_app(config: Path, found: Found, write: Callable[[Path, str], None] = write_with_backup) -> str:
    """Merge ``apps.<name>`` (and the restart extras) into ``config``; returns what was done, for the user.

    ``write`` is the atomic writer (with its backup). A config with no
    ``apps:`` and no ``actions.restart`` gets the block appended as text, so
    its comments survive; otherwise the file is rewritten from its parsed form.
    """
    if not config.exists():
        base = {"state_dir": "./state", "apps": {found.name: found.app}}
        if found.restart:
            base["actions"] = {"restart": dict(found.restart)}
        write(config, yaml.safe_dump(base, sort_keys=False))
        return f"wrote {config}"
    text = config.read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{config}: the top level is not a mapping")
    if "apps" not in data and ("actions" not in data or not found.restart):
        extra = block_text(found)
        if found.restart and "actions" not in data:
            extra += yaml.safe_dump({"actions": {"restart": dict(found.restart)}}, sort_keys=False)
        write(config, text.rstrip("\n") + "\n\n" + extra)
        return f"added apps.{found.name} to {config}"
    apps = data.setdefault("apps", {}) or {}
    verb = "replaced" if found.name in apps else "added"
    apps[found.name] = found.app
    data["apps"] = apps
    if found.restart:
        actions = data.setdefault("actions", {}) or {}
        restart = actions.get("restart") or {}
        actions["restart"] = {**restart, **{k: v for k, v in found.restart.items() if k not in restart}}
        data["actions"] = actions
    write(config, yaml.safe_dump(data, sort_keys=False))
    return f"{verb} apps.{found.name} in {config} (comments were not kept; the old file is the backup)"


__all__ = ["Found", "block_text", "inspect", "requirements", "write_app"]
