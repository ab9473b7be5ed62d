#!/usr/bin/env bash
# Install healer as a systemd service. Idempotent: a second run with the same
# inputs changes no file (content, mode) and reinstalls nothing.
#
#   install.sh [--source DIR] [--prefix /opt/healer] [--root /] [--no-systemctl]
#              [--python python3] [--package SPEC] [--pip-args "ARGS"]
#              [--reinstall] [--uninstall [--purge]]
#
# --root R      stage into R instead of / (packaging, tests). Implies
#               --no-systemctl and skips creating the user: only the
#               sysusers.d/tmpfiles.d snippets are written, which create the
#               user and fix ownership on the target at boot/package install.
# --package S   what pip installs (default: a clean copy of --source). A built
#               wheel works too; the tests use one with --pip-args --no-deps.
# --uninstall   remove what this script installed; /etc/healer and
#               /var/lib/healer (config, secrets, state) stay unless --purge.
set -euo pipefail

PREFIX=/opt/healer
ROOT=/
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=python3
PACKAGE=""
PIP_ARGS=""
SYSTEMCTL=auto
REINSTALL=0
UNINSTALL=0
PURGE=0
SERVICE_USER=healer

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="${2:?}"; shift 2 ;;
        --root) ROOT="${2:?}"; shift 2 ;;
        --source) SOURCE="${2:?}"; shift 2 ;;
        --python) PYTHON="${2:?}"; shift 2 ;;
        --package) PACKAGE="${2:?}"; shift 2 ;;
        --pip-args) PIP_ARGS="${2?}"; shift 2 ;;
        --no-systemctl) SYSTEMCTL=no; shift ;;
        --reinstall) REINSTALL=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) die "unknown option: $1" ;;
    esac
done

case "$PREFIX" in /?*) ;; *) die "--prefix must be an absolute path other than /" ;; esac
case "$ROOT" in /*) ;; *) die "--root must be absolute" ;; esac
[ -d "$ROOT" ] || die "--root $ROOT does not exist"
ROOT="$(cd "$ROOT" && pwd)"
[ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ] && die "--purge only makes sense with --uninstall"
if [ "$SYSTEMCTL" = auto ]; then
    # Only touch the running system when installing into it and systemd runs.
    if [ "$ROOT" = / ] && [ -d /run/systemd/system ]; then SYSTEMCTL=yes; else SYSTEMCTL=no; fi
fi

# r PATH: PATH inside the staging root.
r() { printf '%s%s' "${ROOT%/}" "$1"; }

VENV="$(r "$PREFIX")"
STAMP="$VENV/.healer-install"
UNIT_DST="$(r /etc/systemd/system/healer.service)"
POLKIT_DST="$(r /etc/polkit-1/rules.d/50-healer-restart.rules)"
LOGROTATE_DST="$(r /etc/logrotate.d/healer)"
SYSUSERS_DST="$(r /usr/lib/sysusers.d/healer.conf)"
TMPFILES_DST="$(r /usr/lib/tmpfiles.d/healer.conf)"
CONFIG_DIR="$(r /etc/healer)"

# put SRC DST MODE: install a file only if content or mode differ.
put() {
    local src="$1" dst="$2" mode="$3"
    if [ -f "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c %a "$dst")" = "${mode#0}" ]; then
        return 0
    fi
    install -D -m "$mode" "$src" "$dst"
    say "installed $dst"
}

# put_text DST MODE <<< TEXT
put_text() {
    local tmp
    tmp="$(mktemp)"
    cat >"$tmp"
    put "$tmp" "$1" "$2"
    rm -f "$tmp"
}

# fingerprint: what would be installed; unchanged means skip pip.
fingerprint() {
    {
        "$PYTHON" -c 'import sys; print(sys.version)'
        printf 'pip-args=%s\n' "$PIP_ARGS"
        if [ -n "$PACKAGE" ] && [ -f "$PACKAGE" ]; then
            sha256sum <"$PACKAGE"
        else
            local dir="${PACKAGE:-$SOURCE}"
            (cd "$dir" && find pyproject.toml healer patterns -type f \
                ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 2>/dev/null \
                | LC_ALL=C sort -z | xargs -0 sha256sum) || true
        fi
    } | sha256sum | cut -d' ' -f1
}

# ---------------------------------------------------------------- uninstall
if [ "$UNINSTALL" = 1 ]; then
    if [ "$SYSTEMCTL" = yes ]; then
        systemctl disable --now healer.service || true
    fi
    rm -f "$UNIT_DST" "$POLKIT_DST" "$LOGROTATE_DST" "$SYSUSERS_DST" "$TMPFILES_DST"
    if [ -d "$VENV" ]; then
        # Refuse to delete a prefix this script did not create.
        [ -f "$STAMP" ] || die "$VENV has no .healer-install stamp; not removing it"
        rm -rf -- "$VENV"
    fi
    if [ "$PURGE" = 1 ]; then
        rm -rf -- "$CONFIG_DIR" "$(r /var/lib/healer)" "$(r /var/log/healer)"
        if [ "$ROOT" = / ] && getent passwd "$SERVICE_USER" >/dev/null; then
            userdel "$SERVICE_USER" || true
        fi
    fi
    [ "$SYSTEMCTL" = yes ] && systemctl daemon-reload
    say "uninstalled$([ "$PURGE" = 1 ] && echo ' (purged config and state)' || echo '; kept /etc/healer and /var/lib/healer')"
    exit 0
fi

[ -f "$SOURCE/systemd/healer.service" ] || die "--source $SOURCE is not a healer checkout"

# ------------------------------------------------------------ user & groups
# Always written: on a staged root this is how the user comes to exist
# (systemd-sysusers at boot / in the package's postinst).
put_text "$SYSUSERS_DST" 0644 <<EOF
# healer self-healing daemon (installed by healer/systemd/install.sh)
u $SERVICE_USER - "healer self-healing daemon" /var/lib/healer /usr/sbin/nologin
EOF
# Config dir and file must be group-readable by healer: systemd does not
# chown ConfigurationDirectory=. healer.env stays root-only: systemd reads
# EnvironmentFile= as root before dropping privileges.
put_text "$TMPFILES_DST" 0644 <<EOF
# healer (installed by healer/systemd/install.sh)
d /etc/healer 0750 root $SERVICE_USER -
z /etc/healer/config.yaml 0640 root $SERVICE_USER -
z /etc/healer/healer.env 0600 root root -
EOF
if [ "$ROOT" = / ] && ! getent passwd "$SERVICE_USER" >/dev/null; then
    if command -v systemd-sysusers >/dev/null; then
        systemd-sysusers "$SYSUSERS_DST"
    else
        useradd --system --user-group --home-dir /var/lib/healer --no-create-home \
            --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    say "created user $SERVICE_USER"
fi

# --------------------------------------------------------------------- venv
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    say "created venv $VENV"
fi
WANT="$(fingerprint)"
if [ "$REINSTALL" = 1 ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    PKG="$PACKAGE"
    BUILD=""
    if [ -z "$PKG" ] || [ -d "$PKG" ]; then
        # Build from a clean copy so pip's in-tree build/ and *.egg-info
        # never land in the operator's checkout.
        BUILD="$(mktemp -d)"
        trap 'rm -rf -- "$BUILD"' EXIT
        (cd "${PKG:-$SOURCE}" && tar --exclude=.git --exclude=build --exclude='*.egg-info' \
            --exclude=__pycache__ --exclude=.venv -cf - .) | tar -xf - -C "$BUILD"
        PKG="$BUILD"
    fi
    read -r -a pip_extra <<<"$PIP_ARGS"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --upgrade \
        --force-reinstall "${pip_extra[@]}" "$PKG"
    printf '%s\n' "$WANT" >"$STAMP"
    say "installed healer into $VENV"
else
    say "healer in $VENV is up to date"
fi
[ -x "$VENV/bin/healer" ] || die "$VENV/bin/healer missing after pip install"

# ------------------------------------------------------------ systemd unit
tmp_unit="$(mktemp)"
sed "s#/opt/healer/#${PREFIX%/}/#g" "$SOURCE/systemd/healer.service" >"$tmp_unit"
UNIT_CHANGED=0
if ! { [ -f "$UNIT_DST" ] && cmp -s "$tmp_unit" "$UNIT_DST"; }; then UNIT_CHANGED=1; fi
put "$tmp_unit" "$UNIT_DST" 0644
rm -f "$tmp_unit"

# --------------------------------------------------------------------- docs
put "$SOURCE/systemd/README.md" "$VENV/share/doc/healer/README.md" 0644
put "$SOURCE/systemd/healer-alerts.yml" "$VENV/share/doc/healer/healer-alerts.yml" 0644
put "$SOURCE/systemd/healer.service.d/write-paths.conf.example" \
    "$VENV/share/doc/healer/write-paths.conf.example" 0644
put "$SOURCE/systemd/healer.sudoers.example" "$VENV/share/doc/healer/healer.sudoers.example" 0644

# ------------------------------------------------------------------- config
install -d -m 0750 "$CONFIG_DIR"
if [ ! -e "$CONFIG_DIR/config.yaml" ]; then
    example=""
    for c in config.example.yaml examples/config.yaml config.yaml.example; do
        if [ -f "$SOURCE/$c" ]; then example="$SOURCE/$c"; break; fi
    done
    if [ -n "$example" ]; then
        # The example keeps state in ./state, which here would be /etc/healer/state:
        # read-only under ProtectSystem=strict, so the daemon could not open its
        # store. The unit's StateDirectory= is /var/lib/healer; point there.
        # Its demo log source, ./logs/*.log, would be /etc/healer/logs/*.log: a directory
        # nothing writes to, so the daemon would warn about it at every start. Off here;
        # the operator lists the app's logs (or an apps: block) instead.
        tmp_conf="$(mktemp)"
        sed -E -e 's#^state_dir:[[:space:]]*\./state([[:space:]].*)?$#state_dir: /var/lib/healer   \# StateDirectory= of healer.service (install.sh)#' \
            -e 's#^  files:$#  files: []   \# install.sh: the demo source is off; list your app'"'"'s logs here, or use apps:#' \
            -e 's#^    - path: \./logs/\*\.log$#  \#   - path: ./logs/*.log#' \
            -e 's#^      service: demo$#  \#     service: demo#' \
            "$example" >"$tmp_conf"
        grep -qE '^state_dir: /var/lib/healer( |$)' "$tmp_conf" \
            || die "$example has no 'state_dir: ./state' line to point at /var/lib/healer; set state_dir there"
        if ! grep -qE '^  files: \[\]' "$tmp_conf" || grep -qE '^ +- path: \./logs/' "$tmp_conf"; then
            die "$example's demo source (sources.files: ./logs/*.log) is not where install.sh expects it"
        fi
        install -m 0640 "$tmp_conf" "$CONFIG_DIR/config.yaml"
        rm -f "$tmp_conf"
        say "installed $CONFIG_DIR/config.yaml from $example (state_dir: /var/lib/healer, no log sources yet); edit it, then: systemctl restart healer"
    else
        say "warning: no config.example.yaml in $SOURCE; write $CONFIG_DIR/config.yaml yourself"
    fi
fi
if [ ! -e "$CONFIG_DIR/healer.env" ]; then
    if [ -f "$SOURCE/.env.example" ]; then
        install -m 0600 "$SOURCE/.env.example" "$CONFIG_DIR/healer.env"
    else
        install -m 0600 /dev/null "$CONFIG_DIR/healer.env"
    fi
    say "installed $CONFIG_DIR/healer.env (mode 0600); put secrets there"
fi
if [ "$ROOT" = / ]; then
    chgrp "$SERVICE_USER" "$CONFIG_DIR"
    [ -e "$CONFIG_DIR/config.yaml" ] && chgrp "$SERVICE_USER" "$CONFIG_DIR/config.yaml"
fi

# ------------------------------------------------------------------- polkit
# Generated from the units actions.restart.units RESOLVES to (each entry's
# `unit`, systemd-managed ones only), by healer's own loader in the venv, so
# the rule grants exactly what the daemon will ask for. No units configured,
# or a config healer refuses: no rule at all (a stale one from an earlier
# install is removed), never the shipped example.
rule="$(mktemp)"
err="$(mktemp)"
rc=0
if [ -f "$CONFIG_DIR/config.yaml" ]; then
    "$VENV/bin/python" -m healer.service.privileges polkit-config "$CONFIG_DIR/config.yaml" \
        >"$rule" 2>"$err" || rc=$?
else
    rc=3
fi
if [ "$rc" = 0 ]; then
    put "$rule" "$POLKIT_DST" 0644
else
    if [ "$rc" = 3 ]; then
        say "no systemd units in actions.restart.units: no polkit rule installed"
    else
        say "warning: could not read $CONFIG_DIR/config.yaml ($(tr '\n' ' ' <"$err")): no polkit rule installed; fix the config and rerun install.sh"
    fi
    if [ -e "$POLKIT_DST" ]; then
        rm -f "$POLKIT_DST"
        say "removed $POLKIT_DST"
    fi
fi
rm -f "$rule" "$err"

# ---------------------------------------------------------------- logrotate
put "$SOURCE/systemd/healer.logrotate" "$LOGROTATE_DST" 0644

# ------------------------------------------------------------------ systemd
if [ "$SYSTEMCTL" = yes ]; then
    [ "$UNIT_CHANGED" = 1 ] && systemctl daemon-reload
    systemctl enable --now healer.service
    say "healer enabled and started"
else
    say "not touching systemd (--no-systemctl or --root); on the target run:"
    say "  systemd-sysusers && systemd-tmpfiles --create healer.conf && systemctl daemon-reload && systemctl enable --now healer"
fi
