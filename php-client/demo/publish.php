<?php
/*
 * The demo's publish endpoint: what a real page would do after, say, an
 * order ships. Answers how many connections the message was queued to.
 */
declare(strict_types=1);

require __DIR__ . '/../herald.php';

header('Content-Type: application/json');
$text = (string)($_POST['text'] ?? '');
if (!empty($_POST['broadcast'])) {
    $n = herald_broadcast('demo.broadcast', ['text' => $text]);
} else {
    $n = herald_publish((string)($_POST['to'] ?? ''), 'demo.message', ['text' => $text]);
}
echo json_encode(['delivered' => $n]);
