<?php

/*
 * index.php -- the notifications demo, the first page `make run` points to:
 * the visitor (?user=, 42 by default) connects through herald.js with a
 * token from token.php and sees every notification PHP sends them: its event
 * name, data, id and the time it came. The form posts to publish.php, which
 * calls herald_publish() (one user's tabs) or herald_broadcast() (everyone).
 * Open user 42 in two tabs and user 7 in a third: a publish to 42 shows in
 * both of 42's tabs and not in 7's. The page logic is in notify.js.
 */

declare(strict_types=1);

require __DIR__ . '/common.php';

$user = demo_user();
$config = ['user' => $user, 'wsUrl' => demo_ws_url()];
$other = $user === '7' ? '42' : '7';
?>
<!doctype html>
<html lang="en">
<head>
<?= demo_head("Notifications ($user)") ?>
</head>
<body>
<?= demo_nav($user, 'index.php') ?>
<h1>Notifications</h1>
<p>You are user <b><?= demo_h($user) ?></b>.
   Connection: <span id="state" class="state">connecting</span>.
   Open <a href="?user=<?= demo_h($other) ?>">user <?= demo_h($other) ?></a> in another tab: a
   publish reaches only the tabs of the user it names.</p>
<form id="send" class="line wrap" autocomplete="off">
  <label class="field">To user
    <input type="text" name="to" id="to" value="<?= demo_h($user) ?>" maxlength="32" size="8"
           pattern="[A-Za-z0-9_\-]{1,32}" required>
  </label>
  <label class="field grow">Message
    <input type="text" name="text" id="text" value="Your order has shipped" maxlength="500">
  </label>
  <button id="publish" name="mode" value="publish">herald_publish()</button>
  <button id="broadcast" name="mode" value="broadcast" class="secondary">herald_broadcast()</button>
</form>
<p id="sent" class="sent" aria-live="polite"></p>
<section class="panel live">
  <h2>Received <span id="count" class="count">0</span></h2>
  <ul id="received" class="plain received" aria-live="polite">
    <li class="empty">Nothing yet. Publish above, or run the PHP command that
      <code>make run</code> printed.</li>
  </ul>
</section>
<p class="hint">The form posts to <code>publish.php</code>, which calls
   <code>herald_publish($to, 'demo.message', ['text' => ...])</code> over Herald's API socket.
   Herald queues one frame to every open tab of that user,
   <code>{"id":"...","event":"demo.message","data":{...}}</code>, and answers how many tabs
   that was. The id lets a tab that reconnects get what it missed; a broadcast has none.</p>
<script type="application/json" id="demo-config"><?= demo_js($config) ?></script>
<script src="herald.js"></script>
<script src="demo.js"></script>
<script src="notify.js"></script>
</body>
</html>
