<?php

/*
 * office.php -- the mobile office demo: a task list shared by every user,
 * read and changed through RPC to PHP (rpc.php under php-fpm, with SQLite),
 * kept live by PHP's pushes to the channel office:tasks. The user may
 * subscribe to that channel with a channel token from token.php
 * (herald_channel_token). The page logic is in office.js.
 */

declare(strict_types=1);

require __DIR__ . '/common.php';

$user = demo_user();
$config = ['user' => $user, 'channel' => DEMO_OFFICE_CHANNEL, 'wsUrl' => demo_ws_url()];
?>
<!doctype html>
<html lang="en">
<head>
<?= demo_head("Mobile office ($user)") ?>
</head>
<body>
<?= demo_nav($user, 'office.php') ?>
<h1>Mobile office: tasks</h1>
<p>You are <b><?= demo_h($user) ?></b>. Connection: <span id="state" class="state">connecting</span>.
   Open <a href="?user=bob">bob</a> in another tab or on a phone: changes show everywhere at once.</p>
<form id="add" class="line" autocomplete="off">
  <input type="text" id="title" maxlength="200" placeholder="New task" aria-label="new task" required>
  <button id="add-button">Add</button>
</form>
<section class="panel live">
  <ul id="tasks" class="plain tasks"><li class="empty">Loading…</li></ul>
</section>
<section class="activity">
  <ul id="notes" class="plain notes" aria-live="polite"></ul>
</section>
<p class="hint">Every action is <code>herald.rpc('tasks.add' | 'tasks.toggle' | 'tasks.delete')</code>
   over this page's WebSocket: Herald calls rpc.php through php-fpm, which checks the input,
   writes SQLite and, after the commit, tells every open page with
   <code>herald_publish_channel('office:tasks', ...)</code>. The list itself is
   <code>tasks.list</code>, fetched again after every reconnect.</p>
<script type="application/json" id="demo-config"><?= demo_js($config) ?></script>
<script src="herald.js"></script>
<script src="demo.js"></script>
<script src="office.js"></script>
</body>
</html>
