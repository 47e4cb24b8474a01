<?php

/*
 * publish.php -- what a site's PHP does when something happens for a user: POST user=<id> and
 * text=<text>, and it calls herald_publish($user, 'note', ['text' => $text]). Answers
 * {"delivered": N}, the number of that user's open connections the note was queued to (0 when
 * none is connected: Herald still keeps it in the user's history), or a 502 with
 * {"delivered": false} when Herald could not be reached (herald.php logged why).
 */

declare(strict_types=1);

require __DIR__ . '/herald-test.inc';

header('Content-Type: application/json');
$user = test_user($_POST);
if ($_SERVER['REQUEST_METHOD'] !== 'POST' || $user === null) {
    http_response_code(400);
    echo json_encode(['error' => 'POST user=<id>&text=<text>']);
    exit;
}
test_configure();
$n = herald_publish($user, 'note', ['text' => (string) ($_POST['text'] ?? '')]);
if ($n === false) {
    http_response_code(502);
}
echo json_encode(['delivered' => $n]);
