<?php

/*
 * page.php -- the page a visitor keeps open: signs a connection token for ?user= with
 * herald_token(), loads herald.js (a static file nginx serves) and connects to /ws on the host
 * it was served from, which nginx proxies to Herald. Every "note" event is appended to
 * #messages; onRecover results go to #recoveries ("user: recovered" or "user: lost"), the
 * connection state to #state. #state also keeps, for tests/integration/90-browser.py, how many
 * times the connection opened (data-opens) and the close codes seen (data-closes), and
 * data-load, a random id set once per page load (so the test can tell the page was never
 * reloaded).
 *
 * backoffMax is 1 s, not herald.js's 30 s, to keep the test short: the page reconnects within
 * about a second of Herald being reachable again.
 *
 * With ?entry=module the page loads the ES module instead: `import { Herald } from
 * '/herald.mjs'` in a module script (no global Herald then). #state's data-entry says which
 * one ran: "classic" or "module", and data-global whether a global Herald exists.
 */

declare(strict_types=1);

require __DIR__ . '/herald-test.inc';

$user = test_user($_GET);
if ($user === null) {
    http_response_code(400);
    header('Content-Type: text/plain');
    echo "?user=<id> is required\n";
    exit;
}
$module = ($_GET['entry'] ?? '') === 'module';
test_configure();
$token = herald_token($user, 600);
$js = static fn (mixed $v): string => json_encode($v, JSON_HEX_TAG | JSON_HEX_AMP
    | JSON_HEX_APOS | JSON_HEX_QUOT | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
$h = static fn (string $s): string => htmlspecialchars($s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Herald: notes for <?= $h($user) ?></title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.4 sans-serif; max-width: 40rem; margin: 1.5rem auto; }
  #state { font-weight: bold; }
  #messages li, #recoveries li { font-family: monospace; margin: .2rem 0; }
</style>
</head>
<body>
<h1>Notes for user <?= $h($user) ?></h1>
<p>Connection: <span id="state" data-opens="0" data-closes="">connecting</span></p>
<h2>Recovery</h2>
<ul id="recoveries"></ul>
<h2>Messages</h2>
<ul id="messages"></ul>
<script>
  function start(Herald, entry) {
    'use strict';
    var state = document.getElementById('state');
    var messages = document.getElementById('messages');
    var recoveries = document.getElementById('recoveries');
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    var herald = new Herald(url, { token: <?= $js($token) ?>, backoffMax: 1000 });

    function add(list, text) {
      var li = document.createElement('li');
      li.textContent = text;
      list.appendChild(li);
    }

    state.dataset.entry = entry;
    state.dataset.global = String(typeof window.Herald !== 'undefined');
    state.dataset.load = String(Math.random()).slice(2);
    herald.onState(function (s, info) {
      state.textContent = s;
      if (s === 'open') {
        state.dataset.opens = String(Number(state.dataset.opens) + 1);
      } else if (s === 'close') {
        state.dataset.closes += (state.dataset.closes ? ' ' : '') + info.code;
      }
    });
    herald.on('note', function (data) {
      add(messages, data.text);
    });
    herald.onRecover(function (stream, recovered) {
      var name = stream === null ? 'user' : stream;
      add(recoveries, name + ': ' + (recovered ? 'recovered' : 'lost'));
    });
  }
</script>
<?php if ($module) : ?>
<script type="module">
  import { Herald } from '/herald.mjs';
  start(Herald, 'module');
</script>
<?php else : ?>
<script src="/herald.js"></script>
<script>
  start(window.Herald, 'classic');
</script>
<?php endif; ?>
</body>
</html>
