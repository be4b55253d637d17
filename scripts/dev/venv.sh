# shellcheck shell=bash
# Python 3.12 discovery and the two virtualenvs. Sourced by ./dev.

MAIN_VENV="$ROOT/.venv"
DJ52_VENV="$ROOT/.venv-dj52"
# Bump to force a reinstall of both virtualenvs on every machine.
INSTALL_RECIPE_VERSION=1
STAMP_NAME=".dev-install-stamp"

is_python312() {
    [[ -n $1 && -x $1 ]] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null
}

# find_python312 -> path of a Python 3.12 interpreter (GEARTRAIN_PYTHON overrides).
find_python312() {
    local candidates=() pyenv_root=${PYENV_ROOT:-$HOME/.pyenv} candidate
    if [[ -n ${GEARTRAIN_PYTHON:-} ]]; then
        is_python312 "$GEARTRAIN_PYTHON" ||
            die "GEARTRAIN_PYTHON=${GEARTRAIN_PYTHON} is not a Python 3.12 interpreter: point it at python3.12 or unset it"
        printf '%s' "$GEARTRAIN_PYTHON"
        return 0
    fi
    if command -v pyenv >/dev/null; then
        candidates+=("$(PYENV_VERSION=3.12 pyenv which python3.12 2>/dev/null || true)")
    fi
    while IFS= read -r candidate; do
        candidates+=("$candidate")
    done < <(compgen -G "$pyenv_root/versions/3.12*/bin/python3.12" | sort -V -r)
    candidates+=("$(command -v python3.12 || true)" "$(command -v python3 || true)")
    for candidate in "${candidates[@]}"; do
        if is_python312 "$candidate"; then
            printf '%s' "$candidate"
            return 0
        fi
    done
    die "no Python 3.12 found (tried pyenv, $pyenv_root/versions/3.12*, python3.12, python3): install it with 'pyenv install 3.12' or set GEARTRAIN_PYTHON=/path/to/python3.12"
}

# install_stamp VENV SPEC... -> hash of everything that decides what VENV holds.
install_stamp() {
    local venv=$1
    shift
    {
        printf 'recipe %s\n' "$INSTALL_RECIPE_VERSION"
        printf 'spec %s\n' "$*"
        "$venv/bin/python" -VV
        cat "$ROOT/pyproject.toml" "$ROOT"/requirements/*.txt
    } | sha256sum | cut -d' ' -f1
}

# pip_quiet ARGS... : pip install without the noise of absent local index folders.
pip_quiet() {
    local venv=$1 rc
    shift
    set +e
    "$venv/bin/python" -m pip install -q --progress-bar off "$@" 2>&1 |
        sed -u '/is ignored: it is neither a file nor a directory/d'
    rc=${PIPESTATUS[0]}
    set -e
    return "$rc"
}

# ensure_venv VENV SPEC... : create VENV with Python 3.12 and pip-install SPEC into it,
# unless the stamp says the same SPEC is already installed from the same files.
ensure_venv() {
    local venv=$1 python stamp start
    shift
    if ! is_python312 "$venv/bin/python"; then
        python=$(find_python312)
        log "creating ${venv#"$ROOT"/} with ${python}"
        "$python" -m venv --clear "$venv"
    fi
    stamp=$(install_stamp "$venv" "$@")
    if [[ -f $venv/$STAMP_NAME && $(<"$venv/$STAMP_NAME") == "$stamp" ]] &&
        "$venv/bin/python" -c 'import django, pytest, importlib.metadata as m; m.version("django-geartrain")' \
            2>/dev/null; then
        log "${venv#"$ROOT"/} is up to date (Django $("$venv/bin/python" -c 'import django; print(django.get_version())'))"
        return 0
    fi
    start=$(now)
    log "installing into ${venv#"$ROOT"/}: $*"
    rm -f "$venv/$STAMP_NAME"
    pip_quiet "$venv" --upgrade 'pip>=25.1' ||
        die "could not upgrade pip in ${venv}: see the pip output above"
    pip_quiet "$venv" "$@" || die "pip install into ${venv} failed: see the pip output above"
    printf '%s\n' "$stamp" >"$venv/$STAMP_NAME"
    log "${venv#"$ROOT"/} ready in $(elapsed "$start") s (Django $("$venv/bin/python" -c 'import django; print(django.get_version())'))"
}

ensure_main_venv() {
    with_lock venv ensure_venv "$MAIN_VENV" \
        -e "${ROOT}[postgresql,mysql,yaml]" -r "$ROOT/requirements/django61.txt" \
        --group "$ROOT/pyproject.toml:test" --group "$ROOT/pyproject.toml:lint"
}

ensure_dj52_venv() {
    with_lock venv-dj52 ensure_venv "$DJ52_VENV" \
        -e "${ROOT}[postgresql,yaml]" -r "$ROOT/requirements/django52.txt" \
        --group "$ROOT/pyproject.toml:test"
}
