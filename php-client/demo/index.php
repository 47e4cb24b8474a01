<?php
/*
 * The `make run` demo page: signs a token for the user in ?user= (default
 * 42) with herald_token(), connects through herald.js, and shows every
 * event that arrives. The form posts to publish.php, which calls
 * herald_publish(). Open two tabs as user 42 and one as user 7 to see that
 * a publish reaches exactly the targeted user's tabs. The other two demos,
 * chat.php and office.php, are linked from here.
 */
declare(strict_types=1);

require __DIR__ . '/common.php';

$user = demo_user();
$token = herald_token($user, 3600);
$wsUrl = demo_ws_url();
$h = 'demo_h';
?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Herald demo: user <?= $h($user) ?></title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  nav { margin-bottom: 1rem; }
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; }
  #state { font-weight: bold; }
  #log li { font-family: ui-monospace, monospace; margin: .2rem 0; }
  form { margin: 1rem 0; display: flex; gap: .5rem; }
</style>
</head>
<body>
<?= demo_nav($user, 'index.php') ?>
<h1>Herald demo: notifications</h1>
<p>You are user <b><?= $h($user) ?></b>. Connection: <span id="state">connecting</span>.
   Try <a href="?user=7">user 7</a> in another tab.
   Also: the <a href="chat.php?user=<?= $h(rawurlencode($user)) ?>">team chat</a> (channels,
   presence, messages between browsers) and the
   <a href="office.php?user=<?= $h(rawurlencode($user)) ?>">mobile office</a> (RPC to PHP, a
   shared task list in SQLite).</p>
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
