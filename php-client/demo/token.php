<?php

/*
 * token.php -- the demos' token endpoint, what herald.js's getToken() fetches
 * before every connection attempt, so a reconnect after the token expired
 * still works:
 *
 *   GET token.php?user=ann                        a connection token (text/plain)
 *   GET token.php?user=ann&channel=office:tasks   a channel token for that channel
 *
 * A real site signs for the user of its session instead of ?user=, and only
 * for channels that user may read.
 */

declare(strict_types=1);

require __DIR__ . '/common.php';

header('Content-Type: text/plain; charset=utf-8');
header('Cache-Control: no-store');
$user = demo_user();
$channel = $_GET['channel'] ?? null;
if ($channel === null) {
    echo demo_token($user);
} elseif ($channel === DEMO_OFFICE_CHANNEL) {
    echo herald_channel_token($user, DEMO_OFFICE_CHANNEL, 3600);
} else {
    http_response_code(403);
    echo "no token for that channel\n";
}
