<?php

/*
 * publish.php -- the notifications demo's publish endpoint (index.php's form
 * posts here): what a real page does after, say, an order ships.
 *
 *   POST to=USER&text=TEXT               herald_publish(USER, 'demo.message', {text})
 *   POST broadcast=1&text=TEXT           herald_broadcast('demo.broadcast', {text})
 *
 * Answers JSON: {"delivered": N}, the connections the message was queued
 * to; or {"error": "..."} with 400 (a user that is not a plain id, a text
 * over 500 characters or not UTF-8), 405 (not POST) or 502 (Herald did not
 * answer; herald.php logged why).
 */

declare(strict_types=1);

require __DIR__ . '/common.php';

const DEMO_TEXT_MAX = 500;

/** Answer $body as JSON with HTTP status $status. */
function publish_answer(int $status, array $body): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    header('Cache-Control: no-store');
    echo json_encode($body), "\n";
}

if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
    header('Allow: POST');
    publish_answer(405, ['error' => 'POST only']);
    return;
}
$text = $_POST['text'] ?? '';
/* With /u, text that is not UTF-8 does not match either. */
if (!is_string($text) || preg_match('/^.{0,' . DEMO_TEXT_MAX . '}$/su', $text) !== 1) {
    publish_answer(400,
        ['error' => 'text must be UTF-8, at most ' . DEMO_TEXT_MAX . ' characters']);
    return;
}
if (!empty($_POST['broadcast'])) {
    $n = herald_broadcast('demo.broadcast', ['text' => $text]);
} else {
    $to = $_POST['to'] ?? '';
    if (!is_string($to) || !preg_match(DEMO_USER_PATTERN, $to)) {
        publish_answer(400,
            ['error' => 'to must be a user id: letters, digits, _ and -, up to 32']);
        return;
    }
    $n = herald_publish($to, 'demo.message', ['text' => $text]);
}
if ($n === false) {
    publish_answer(502, ['error' => 'Herald did not take the message (see the PHP error log)']);
    return;
}
publish_answer(200, ['delivered' => $n]);
