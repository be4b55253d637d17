# shellcheck shell=bash
# Python discovery and the three virtualenvs. Sourced by ./dev.

MAIN_VENV="$ROOT/.venv"
DJ52_VENV="$ROOT/.venv-dj52"
PY313_VENV="$ROOT/.venv-py313"
# Bump to force a reinstall of every virtualenv on every machine.
INSTALL_RECIPE_VERSION=1
STAMP_NAME=".dev-install-stamp"

# is_python VERSION PATH : PATH runs Python VERSION (e.g. 3.12).
is_python() {
    [[ -n $2 && -x $2 ]] &&
        "$2" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$1')" 2>/dev/null
}

# find_python VERSION -> path of a Python VERSION interpreter. GEARTRAIN_PYTHON
# overrides it for 3.12, GEARTRAIN_PYTHON313 for 3.13.
find_python() {
    local version=$1 candidates=() pyenv_root=${PYENV_ROOT:-$HOME/.pyenv} candidate
    local override=GEARTRAIN_PYTHON
    [[ $version == 3.12 ]] || override=GEARTRAIN_PYTHON${version//./}
    if [[ -n ${!override:-} ]]; then
        is_python "$version" "${!override}" ||
            die "${override}=${!override} is not a Python ${version} interpreter: point it at python${version} or unset it"
        printf '%s' "${!override}"
        return 0
    fi
    if command -v pyenv >/dev/null; then
        candidates+=("$(PYENV_VERSION=$version pyenv which "python${version}" 2>/dev/null || true)")
    fi
    while IFS= read -r candidate; do
        candidates+=("$candidate")
    done < <(compgen -G "$pyenv_root/versions/${version}*/bin/python${version}" | sort -V -r)
    candidates+=("$(command -v "python${version}" || true)" "$(command -v python3 || true)")
    for candidate in "${candidates[@]}"; do
        if is_python "$version" "$candidate"; then
            printf '%s' "$candidate"
            return 0
        fi
    done
    die "no Python ${version} found (tried pyenv, $pyenv_root/versions/${version}*, python${version}, python3): install it with 'pyenv install ${version}' or set ${override}=/path/to/python${version}"
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

# ensure_venv VENV VERSION SPEC... : create VENV with Python VERSION and pip-install SPEC
# into it, unless the stamp says the same SPEC is already installed from the same files.
ensure_venv() {
    local venv=$1 version=$2 python stamp start
    shift 2
    if ! is_python "$version" "$venv/bin/python"; then
        python=$(find_python "$version")
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
    with_lock venv ensure_venv "$MAIN_VENV" 3.12 \
        -e "${ROOT}[postgresql,mysql,yaml]" -r "$ROOT/requirements/django61.txt" \
        --group "$ROOT/pyproject.toml:test" --group "$ROOT/pyproject.toml:lint"
}

ensure_dj52_venv() {
    with_lock venv-dj52 ensure_venv "$DJ52_VENV" 3.12 \
        -e "${ROOT}[postgresql,yaml]" -r "$ROOT/requirements/django52.txt" \
        --group "$ROOT/pyproject.toml:test"
}

# The newest supported Python, with the newest Django: the Django 6.1 + sqlite entry.
ensure_py313_venv() {
    with_lock venv-py313 ensure_venv "$PY313_VENV" 3.13 \
        -e "${ROOT}[yaml]" -r "$ROOT/requirements/django61.txt" \
        --group "$ROOT/pyproject.toml:test"
}
