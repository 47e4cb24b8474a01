<?php

/*
 * common.php -- what the demo pages share: who the visitor is, their tokens,
 * the WebSocket URL, HTML escaping, the <head> (demo.css, favicon.svg) and
 * the navigation between the demos.
 *
 * The demo has no login: the user is whoever ?user= names (letters, digits,
 * "_" and "-", up to 32), 42 by default. A real site takes the id from its
 * session instead, and signs exactly the same tokens.
 *
 * Channels (run.sh starts Herald with these settings as flags):
 *   room:NAME      team chat: presence (join/leave) and publishing by members;
 *                  allowed by the connection token's "channels" claim (room:*)
 *   office:tasks   mobile office: PHP's pushes of task changes; allowed by a
 *                  channel token from herald_channel_token() (token.php)
 */

declare(strict_types=1);

require_once __DIR__ . '/../herald.php';

const DEMO_OFFICE_CHANNEL = 'office:tasks';
/** A user id the demos accept: what ?user= and the publish form may name. */
const DEMO_USER_PATTERN = '/^[A-Za-z0-9_-]{1,32}$/';

/** The visitor's user id from ?user=, or "42". */
function demo_user(): string
{
    $user = $_GET['user'] ?? '';
    return is_string($user) && preg_match(DEMO_USER_PATTERN, $user) ? $user : '42';
}

/** A connection token for the demos: any room:* channel, the user id as its presence name. */
function demo_token(string $user): string
{
    return herald_token($user, 3600, ['channels' => ['room:*'], 'info' => ['name' => $user]]);
}

/** Herald's WebSocket URL (run.sh exports it; the default is Herald's own). */
function demo_ws_url(): string
{
    return getenv('HERALD_WS_URL') ?: 'ws://127.0.0.1:9601/ws';
}

/** Escape text for HTML (element content and quoted attributes). */
function demo_h(string $s): string
{
    return htmlspecialchars($s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

/** A value as a JavaScript literal safe inside a <script> element. */
function demo_js(mixed $v): string
{
    return json_encode($v, JSON_HEX_TAG | JSON_HEX_AMP | JSON_HEX_APOS | JSON_HEX_QUOT
        | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
}

/** What every demo page's <head> holds: the title $title, demo.css and the favicon. */
function demo_head(string $title): string
{
    return "<meta charset=\"utf-8\">\n"
        . "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        . '<title>' . demo_h($title) . "</title>\n"
        . "<link rel=\"icon\" href=\"favicon.svg\" type=\"image/svg+xml\">\n"
        . "<link rel=\"stylesheet\" href=\"demo.css\">\n";
}

/** The links between the three demos, for the user $user, marking $current. */
function demo_nav(string $user, string $current): string
{
    $pages = ['index.php' => 'Notifications', 'chat.php' => 'Team chat',
              'office.php' => 'Mobile office'];
    $out = [];
    foreach ($pages as $file => $title) {
        $href = ($file === 'index.php' ? './' : $file) . '?user=' . rawurlencode($user);
        $out[] = $file === $current
            ? '<b aria-current="page">' . demo_h($title) . '</b>'
            : '<a href="' . demo_h($href) . '">' . demo_h($title) . '</a>';
    }
    return '<header class="top"><span class="brand">Herald demo</span><nav>'
        . implode('', $out) . "</nav></header>\n";
}
