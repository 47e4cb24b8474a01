<?php
/*
 * The `make run` demo page: signs a token for the user in ?user= (default
 * 42) with herald_token(), connects through herald.js, and shows every
 * event that arrives. The form posts to publish.php, which calls
 * herald_publish(). Open two tabs as user 42 and one as user 7 to see that
 * a publish reaches exactly the targeted user's tabs.
 */
declare(strict_types=1);

require __DIR__ . '/../herald.php';

$user = preg_match('/^[A-Za-z0-9_-]{1,32}$/', $_GET['user'] ?? '') ? $_GET['user'] : '42';
$token = herald_token($user, 3600);
$wsUrl = getenv('HERALD_WS_URL') ?: 'ws://127.0.0.1:9601/ws';
$h = fn (string $s): string => htmlspecialchars($s, ENT_QUOTES);
?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Herald demo: user <?= $h($user) ?></title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; }
  #state { font-weight: bold; }
  #log li { font-family: ui-monospace, monospace; margin: .2rem 0; }
  form { margin: 1rem 0; display: flex; gap: .5rem; }
</style>
</head>
<body>
<h1>Herald demo</h1>
<p>You are user <b><?= $h($user) ?></b>. Connection: <span id="state">connecting</span>.
   Try <a href="?user=7">user 7</a> in another tab.</p>
<form id="send">
  <input name="to" value="<?= $h($user) ?>" size="8" aria-label="to user">
  <input name="text" value="Hello from PHP" size="30" aria-label="text">
  <button>herald_publish()</button>
  <button name="broadcast" value="1">herald_broadcast()</button>
</form>
<ul id="log"></ul>
<script src="herald.js"></script>
<script>
  const state = document.getElementById('state');
  const log = document.getElementById('log');
  const herald = new Herald(<?= json_encode($wsUrl, JSON_UNESCAPED_SLASHES) ?>, { token: <?= json_encode($token) ?> });
  herald.onState((s) => { state.textContent = s; });
  herald.on('*', (data, event) => {
    const li = document.createElement('li');
    li.textContent = event + ' ' + JSON.stringify(data);
    log.prepend(li);
  });
  document.getElementById('send').addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = new FormData(e.target);
    if (e.submitter && e.submitter.name === 'broadcast') body.set('broadcast', '1');
    const r = await fetch('publish.php', { method: 'POST', body });
    const li = document.createElement('li');
    li.textContent = 'publish answered: ' + await r.text();
    log.prepend(li);
  });
</script>
</body>
</html>
