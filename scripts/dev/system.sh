# shellcheck shell=bash
# System packages (Debian) and the loopback database/cache servers. Sourced by ./dev.

# Build headers for mysqlclient; Chromium for the browser tests (both used by ./dev).
# shellcheck disable=SC2034
BUILD_PACKAGES=(libmariadb-dev pkg-config)
BROWSER_PACKAGES=(chromium chromium-driver)
SERVICE_WAIT_SECONDS=${DEV_SERVICE_WAIT:-30}
APT_UPDATED=""

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ensure_system_packages PKG... : install the missing ones (apt-get update at most once).
ensure_system_packages() {
    local missing=() pkg sudo=()
    if ! command -v dpkg-query >/dev/null; then
        warn "dpkg-query not found (not Debian?): make sure these are installed: $*"
        return 0
    fi
    for pkg in "$@"; do
        pkg_installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        log "system packages present: $*"
        return 0
    fi
    if ((EUID != 0)); then
        command -v sudo >/dev/null ||
            die "missing system packages ${missing[*]} and not root: install them with: apt-get install ${missing[*]}"
        sudo=(sudo)
    fi
    if [[ -z $APT_UPDATED ]]; then
        log "apt-get update"
        "${sudo[@]}" apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

tcp_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

postgresql_ready() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h 127.0.0.1 -p 5432 -t 2
    else
        tcp_open 5432
    fi
}

mysql_ready() {
    local admin
    admin=$(command -v mariadb-admin || command -v mysqladmin || true)
    if [[ -n $admin ]]; then
        "$admin" --protocol=tcp -h 127.0.0.1 -P 3306 -u root --connect-timeout=2 ping >/dev/null 2>&1
    else
        tcp_open 3306
    fi
}

redis_ready() {
    if command -v redis-cli >/dev/null; then
        [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]
    else
        tcp_open 6379
    fi
}

postgresql_start() {
    local version
    command -v pg_ctlcluster >/dev/null || { warn "pg_ctlcluster not found: is PostgreSQL installed?"; return 1; }
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
    version=${version:-15}
    if id postgres >/dev/null 2>&1; then install -d -m 2775 -o postgres -g postgres /var/run/postgresql; fi
    log "starting PostgreSQL: pg_ctlcluster --skip-systemctl-redirect ${version} main start"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
}

mysql_start() {
    local daemon
    daemon=$(command -v mariadbd || { [[ -x /usr/sbin/mariadbd ]] && echo /usr/sbin/mariadbd; } || true)
    [[ -n $daemon ]] || { warn "mariadbd not found: is MariaDB installed?"; return 1; }
    if id mysql >/dev/null 2>&1; then install -d -m 755 -o mysql -g mysql /run/mysqld; fi
    log "starting MariaDB: start-stop-daemon --start --oknodo --background --exec ${daemon}"
    start-stop-daemon --start --oknodo --background --exec "$daemon"
}

redis_start() {
    command -v redis-server >/dev/null || { warn "redis-server not found: is Redis installed?"; return 1; }
    log 'starting Redis: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
}

# ensure_service NAME : NAME is postgresql, mysql or redis; start it if down, then wait.
ensure_service() {
    local name=$1 waited=0 start
    if "${name}_ready"; then
        log "${name}: accepting connections"
        return 0
    fi
    log "${name}: not accepting connections"
    "${name}_start" || warn "${name}: the start command failed; waiting anyway"
    start=$(now)
    while ! "${name}_ready"; do
        if ((waited >= SERVICE_WAIT_SECONDS * 2)); then
            warn "${name}: still not accepting connections after ${SERVICE_WAIT_SECONDS} s"
            return 1
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    log "${name}: accepting connections after $(elapsed "$start") s"
}

# ensure_services NAME... : records a failed row in the summary for each one that is down.
ensure_services() {
    local name
    for name in "$@"; do
        if ! ensure_service "$name"; then
            record_result "service ${name}" 1 "0.0" "not accepting connections on 127.0.0.1"
        fi
    done
}
