#!/bin/sh
# `make run`: Herald with its embedded defaults, and the demo page on PHP's
# built-in server. Ctrl-C stops both (only the two processes started here).
set -eu
bin=${1:-build/herald}
root=$(cd "$(dirname "$0")/../.." && pwd)
case $bin in /*) ;; *) bin="$root/$bin" ;; esac
# The embedded defaults; the environment may move them (the tests do).
demo_port=${DEMO_PORT:-8080}
ws_listen=${HERALD_LISTEN:-127.0.0.1:9601}
export HERALD_SOCKET=${HERALD_SOCKET:-/tmp/herald.sock}
export HERALD_SECRET=herald-dev-secret
export HERALD_WS_URL="ws://$ws_listen/ws"

"$bin" --listen "$ws_listen" --api-socket "$HERALD_SOCKET" &
herald_pid=$!
php -S "127.0.0.1:$demo_port" -t "$root/php-client/demo" "$root/php-client/demo/router.php" \
    >/dev/null 2>&1 &
php_pid=$!
trap 'kill $herald_pid $php_pid 2>/dev/null; wait $herald_pid 2>/dev/null; exit 0' INT TERM
# Wait (up to 5 s) for the API socket: Herald is ready once it exists.
for _ in $(seq 50); do
    [ -S "$HERALD_SOCKET" ] && break
    kill -0 $herald_pid 2>/dev/null || break
    sleep 0.1
done
if ! [ -S "$HERALD_SOCKET" ] || ! kill -0 $herald_pid 2>/dev/null; then
    echo "herald did not start (see its log above)" >&2
    kill $herald_pid $php_pid 2>/dev/null || true
    exit 1
fi
cat <<MSG

Herald is running with its development defaults:
  WebSocket   $HERALD_WS_URL?token=JWT
  API socket  $HERALD_SOCKET   (secret: $HERALD_SECRET, for development only)

Open the demo:  http://127.0.0.1:$demo_port/?user=42   (and ?user=7 in another tab)

Publish from PHP (any script, any terminal):
  HERALD_SOCKET=$HERALD_SOCKET HERALD_SECRET=$HERALD_SECRET php -r '
    require "$root/php-client/herald.php";
    echo herald_publish("42", "order.shipped", ["id" => 7]), " tab(s)\n";'

Connect a browser yourself:
  token:  php -r 'require "$root/php-client/herald.php"; echo herald_token("42");'
  JS:     new Herald("$HERALD_WS_URL", {token}).on("order.shipped", d => ...)

Ctrl-C stops Herald and the demo.
MSG
status=0
wait $herald_pid || status=$?
kill $php_pid 2>/dev/null || true
exit $status
