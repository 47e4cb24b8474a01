<?php

/*
 * chat.php -- the team chat demo: one room (room:lobby, or ?room=NAME) with
 * presence and publishing by its members. The connection token's "channels"
 * claim (common.php) lets the user subscribe to room:*; run.sh starts Herald
 * with room:* as presence_channels and client_publish. The page logic is in
 * chat.js; this file only says who the user is and where Herald is.
 */

declare(strict_types=1);

require __DIR__ . '/common.php';

$user = demo_user();
$room = $_GET['room'] ?? 'lobby';
if (!is_string($room) || !preg_match('/^[a-z0-9_-]{1,32}$/', $room)) {
    $room = 'lobby';
}
$config = ['user' => $user, 'room' => $room, 'channel' => "room:$room",
           'wsUrl' => demo_ws_url()];
?>
<!doctype html>
<html lang="en">
<head>
<?= demo_head("Team chat: $room ($user)") ?>
</head>
<body>
<?= demo_nav($user, 'chat.php') ?>
<h1>Team chat: <?= demo_h($room) ?></h1>
<p>You are <b><?= demo_h($user) ?></b>. Connection: <span id="state" class="state">connecting</span>.
   Open <a href="?user=bob&amp;room=<?= demo_h(rawurlencode($room)) ?>">bob</a> in another tab;
   two tabs of one user show once in the member list.</p>
<div class="chat live">
  <section class="panel">
    <ul id="messages" class="plain messages" aria-live="polite"></ul>
  </section>
  <aside class="panel">
    <b>Here now (<span id="count">0</span>)</b>
    <ul id="members" class="plain members"></ul>
  </aside>
</div>
<form id="send" class="line" autocomplete="off">
  <input type="text" id="text" maxlength="500" placeholder="Message" aria-label="message" required>
  <button id="send-button">Send</button>
</form>
<p class="hint">Each message goes from this browser straight to Herald (publish on the
   room's channel), which stamps it with your user id from your token and hands it to every
   member. Your own messages show when Herald has delivered them back (echo), so every member
   sees the same order. Nothing is stored: who joins later sees only what comes after.</p>
<script type="application/json" id="demo-config"><?= demo_js($config) ?></script>
<script src="herald.js"></script>
<script src="demo.js"></script>
<script src="chat.js"></script>
</body>
</html>
