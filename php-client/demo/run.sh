#!/bin/sh
# `make run`: Herald with its embedded defaults, and the demo page on PHP's
# built-in server. Ctrl-C stops both (only the two processes started here).
set -eu
bin=${1:-build/herald}
root=$(cd "$(dirname "$0")/../.." && pwd)
demo_port=${DEMO_PORT:-8080}
export HERALD_SOCKET=/tmp/herald.sock
export HERALD_SECRET=herald-dev-secret

"$root/$bin" &
herald_pid=$!
php -S "127.0.0.1:$demo_port" -t "$root/php-client/demo" "$root/php-client/demo/router.php" \
    >/dev/null 2>&1 &
php_pid=$!
trap 'kill $herald_pid $php_pid 2>/dev/null; wait $herald_pid 2>/dev/null; exit 0' INT TERM
sleep 1
cat <<MSG

Herald is running with its development defaults:
  WebSocket   ws://127.0.0.1:9601/ws?token=JWT
  API socket  $HERALD_SOCKET   (secret: $HERALD_SECRET, for development only)

Open the demo:  http://127.0.0.1:$demo_port/?user=42   (and ?user=7 in another tab)

Publish from PHP (any script, any terminal):
  HERALD_SOCKET=$HERALD_SOCKET HERALD_SECRET=$HERALD_SECRET php -r '
    require "$root/php-client/herald.php";
    echo herald_publish("42", "order.shipped", ["id" => 7]), " tab(s)\n";'

Connect a browser yourself:
  token:  php -r 'require "$root/php-client/herald.php"; echo herald_token("42");'
  JS:     new Herald("ws://127.0.0.1:9601/ws", {token}).on("order.shipped", d => ...)

Ctrl-C stops Herald and the demo.
MSG
wait $herald_pid
