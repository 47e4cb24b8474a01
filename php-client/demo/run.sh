#!/bin/sh
# `make run`: Herald with its embedded defaults plus, as flags, the channel
# and RPC settings the demos need; a private php-fpm that runs the mobile
# office's RPC script (rpc.php); and the demo pages on PHP's built-in server.
# php-fpm's config, its socket and the office's SQLite file live in one temp
# dir. Ctrl-C (SIGINT, or SIGTERM) stops the processes started here, by PID,
# and removes that dir.
set -eu
bin=${1:-build/herald}
root=$(cd "$(dirname "$0")/../.." && pwd)
case $bin in /*) ;; *) bin="$root/$bin" ;; esac
demo="$root/php-client/demo"
fpm_bin=${PHP_FPM:-/usr/sbin/php-fpm8.2}
# The embedded defaults; the environment may move them (the tests do).
demo_port=${DEMO_PORT:-8080}
ws_listen=${HERALD_LISTEN:-127.0.0.1:9601}
export HERALD_SOCKET="${HERALD_SOCKET:-/tmp/herald.sock}"
export HERALD_SECRET=herald-dev-secret
export HERALD_WS_URL="ws://$ws_listen/ws"

herald_pid='' php_pid='' fpm_pid='' run_dir=''

# Is process $1 running (not gone, not a zombie waiting for us)?
running() {
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed 's/.*) //; s/ .*//' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "$state" != Z ]
}

# Stop everything started here: SIGTERM, then SIGKILL after 5 s (php-fpm's
# children too, by the PIDs whose parent is our php-fpm); remove the temp dir.
stop_all() {
    trap '' INT TERM     # a second Ctrl-C must not cut the cleanup short
    trap - EXIT
    children=''
    if [ -n "$fpm_pid" ]; then
        children=$(pgrep -P "$fpm_pid" 2>/dev/null || true)
    fi
    for pid in $php_pid $herald_pid $fpm_pid; do
        kill "$pid" 2>/dev/null || true
    done
    for _ in $(seq 50); do
        alive=''
        for pid in $php_pid $herald_pid $fpm_pid $children; do
            if running "$pid"; then alive=$pid; fi
        done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    for pid in $php_pid $herald_pid $fpm_pid $children; do
        if running "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    done
    wait 2>/dev/null || true
    if [ -n "$run_dir" ]; then rm -rf "$run_dir"; fi
}
trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

# Wait up to 5 s for the unix socket $1 made by process $2.
wait_socket() {
    for _ in $(seq 50); do
        [ -S "$1" ] && return 0
        running "$2" || return 1
        sleep 0.1
    done
    [ -S "$1" ]
}

# php-fpm runs without any php.ini (-n), so it loads exactly what rpc.php needs.
fpm_ext='-d extension=pdo -d extension=pdo_sqlite'
if ! [ -x "$fpm_bin" ]; then
    echo "run.sh: $fpm_bin not found (make deps installs php-fpm; PHP_FPM=path overrides)" >&2
    exit 1
fi
# shellcheck disable=SC2086
if ! "$fpm_bin" -n $fpm_ext -m 2>/dev/null | grep -qx pdo_sqlite; then
    echo "run.sh: PHP's pdo_sqlite is missing (make deps installs php-sqlite3)" >&2
    exit 1
fi

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/herald-demo.XXXXXX")
fpm_socket="$run_dir/php-fpm.sock"
cat >"$run_dir/php-fpm.conf" <<CONF
[global]
pid = $run_dir/php-fpm.pid
error_log = /proc/self/fd/2
log_level = warning
daemonize = no
process_control_timeout = 3s

[herald-demo]
listen = $fpm_socket
listen.mode = 0600
pm = static
pm.max_children = 3
request_terminate_timeout = 30s
catch_workers_output = yes
decorate_workers_output = no
clear_env = yes
env[HERALD_SECRET] = $HERALD_SECRET
env[HERALD_SOCKET] = $HERALD_SOCKET
env[HERALD_DEMO_DB] = $run_dir/office.sqlite
php_admin_flag[display_errors] = off
php_admin_flag[log_errors] = on
php_admin_value[error_log] = /proc/self/fd/2
php_admin_value[memory_limit] = 64M
CONF
root_flag=''
if [ "$(id -u)" = 0 ]; then
    root_flag=-R        # php-fpm refuses to run a pool as root without it
fi
# shellcheck disable=SC2086
"$fpm_bin" -F -n $fpm_ext -y "$run_dir/php-fpm.conf" $root_flag </dev/null &
fpm_pid=$!
if ! wait_socket "$fpm_socket" "$fpm_pid"; then
    echo "php-fpm did not start (see its log above)" >&2
    exit 1
fi

"$bin" --listen "$ws_listen" --api-socket "$HERALD_SOCKET" \
    --client-publish 'room:*' --presence-channels 'room:*' \
    --rpc-socket "unix:$fpm_socket" --rpc-script "$demo/rpc.php" </dev/null &
herald_pid=$!
php -S "127.0.0.1:$demo_port" -t "$demo" "$demo/router.php" </dev/null >/dev/null 2>&1 &
php_pid=$!
# Herald is ready once its API socket exists.
if ! wait_socket "$HERALD_SOCKET" "$herald_pid"; then
    echo "herald did not start (see its log above)" >&2
    exit 1
fi
cat <<MSG

Herald is running with its development defaults:
  WebSocket   $HERALD_WS_URL?token=JWT
  API socket  $HERALD_SOCKET   (secret: $HERALD_SECRET, for development only)
  Channels    room:* (presence, browsers publish), office:tasks (channel token)
  RPC         php-fpm on unix:$fpm_socket runs $demo/rpc.php
  Temp dir    $run_dir   (php-fpm, office.sqlite; removed on exit)

Open the demos (any ?user= name; open a second user in another tab):
  Notifications  http://127.0.0.1:$demo_port/?user=42   (and ?user=7 in another tab)
  Team chat      http://127.0.0.1:$demo_port/chat.php?user=ann   (and ?user=bob)
  Mobile office  http://127.0.0.1:$demo_port/office.php?user=ann   (and ?user=bob)

Publish from PHP (any script, any terminal):
  HERALD_SOCKET=$HERALD_SOCKET HERALD_SECRET=$HERALD_SECRET php -r '
    require "$root/php-client/herald.php";
    echo herald_publish("42", "order.shipped", ["id" => 7]), " tab(s)\n";'

Connect a browser yourself:
  token:  HERALD_SECRET=$HERALD_SECRET php -r 'require "$root/php-client/herald.php"; echo herald_token("42"), "\n";'
  JS:     (in the console of any demo page above: it loads herald.js; TOKEN is the token)
          new Herald("$HERALD_WS_URL", {token: "TOKEN"}).on("order.shipped", (d) => console.log("order.shipped", d))

Ctrl-C stops Herald, php-fpm and the demo.
MSG
status=0
wait "$herald_pid" || status=$?
herald_pid=''
stop_all
exit $status
