<?php

/**
 * publish.php -- the php-fpm side of the "php" benchmark (bench/phpbench.py):
 * each request is one page of a PHP site that publishes one event to one user.
 *
 * loadgen sends the event over FastCGI as Herald's publish body,
 * {"users":["u17"],"event":"b","data":{"s":SEQ,"t":NS,"p":"xx.."}}, with this
 * file as SCRIPT_FILENAME. The script decodes it and publishes it on, to the
 * server named by the pool's environment:
 *
 *   HERALD_BENCH_TARGET=herald  through php-client (Herald\Client::publish) on
 *                               HERALD_BENCH_SOCKET; HERALD_BENCH_PERSISTENT=1
 *                               passes 'persistent' => true (one kept
 *                               FastCGI connection per php-fpm worker)
 *   HERALD_BENCH_TARGET=nchan   POST /pub/USER to Nchan on 127.0.0.1:
 *                               HERALD_BENCH_PORT over one kept HTTP/1.1
 *                               connection per worker (pfsockopen): the data,
 *                               as Nchan's subscribers receive it
 *
 * It answers 200 {"ok":true,"delivered":N} (N is -1 for Nchan, which does
 * not count), or 502 with the reason when the publish failed, so loadgen
 * counts a failure as a publish error. Nothing is logged per request.
 */

declare(strict_types=1);

require_once __DIR__ . '/../../php-client/herald.php';

/** Answer the request: a status and a JSON body. */
function bench_answer(int $status, array $body): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($body), "\n";
}

/** Publish through php-client; the connections reached. */
function bench_herald(array $users, string $event, mixed $data): int
{
    $options = ['socket' => (string)getenv('HERALD_BENCH_SOCKET')];
    if (getenv('HERALD_BENCH_PERSISTENT') === '1') {
        $options['persistent'] = true;
    }
    return (new Herald\Client($options))->publish($users, $event, $data);
}

/** One POST to Nchan on the kept connection; the HTTP status. */
function bench_nchan_post($fp, string $channel, string $body): int
{
    $req = "POST /pub/$channel HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Content-Type: application/json\r\nContent-Length: " . strlen($body) . "\r\n\r\n" . $body;
    if (fwrite($fp, $req) !== strlen($req)) {
        return 0;
    }
    $line = fgets($fp);
    if ($line === false || !preg_match('#^HTTP/1\.[01] (\d{3})#', $line, $m)) {
        return 0;
    }
    $length = 0;
    while (($h = fgets($fp)) !== false && $h !== "\r\n") {
        if (stripos($h, 'Content-Length:') === 0) {
            $length = (int)trim(substr($h, 15));
        }
    }
    if ($h === false) {
        return 0;
    }
    while ($length > 0 && ($chunk = fread($fp, $length)) !== false && $chunk !== '') {
        $length -= strlen($chunk);
    }
    return $length === 0 ? (int)$m[1] : 0;
}

/** Publish data to Nchan's channel for the user; the HTTP status (0: no answer). */
function bench_nchan(string $user, mixed $data): int
{
    $body = json_encode($data, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
    $port = (int)getenv('HERALD_BENCH_PORT');
    // A kept connection Nchan closed meanwhile answers nothing: one more try on a new one.
    for ($try = 0; $try < 2; $try++) {
        $fp = @pfsockopen('tcp://127.0.0.1', $port, $errno, $errstr, 3.0);
        if ($fp === false) {
            return 0;
        }
        stream_set_timeout($fp, 3);
        $status = bench_nchan_post($fp, $user, $body);
        if ($status !== 0) {
            return $status;
        }
        fclose($fp);
    }
    return 0;
}

$msg = json_decode((string)file_get_contents('php://input'), true);
if (!is_array($msg) || !isset($msg['users'][0], $msg['event']) || !is_string($msg['users'][0])) {
    bench_answer(400, ['ok' => false, 'error' => 'expected {"users":[...],"event":...,"data":...}']);
    return;
}
try {
    if (getenv('HERALD_BENCH_TARGET') === 'nchan') {
        $status = bench_nchan($msg['users'][0], $msg['data'] ?? null);
        if ($status < 200 || $status >= 300) {
            bench_answer(502, ['ok' => false, 'error' => "nchan answered $status"]);
            return;
        }
        bench_answer(200, ['ok' => true, 'delivered' => -1]);
    } else {
        $n = bench_herald($msg['users'], (string)$msg['event'], $msg['data'] ?? null);
        bench_answer(200, ['ok' => true, 'delivered' => $n]);
    }
} catch (Herald\Exception $e) {
    bench_answer(502, ['ok' => false, 'error' => get_class($e) . ': ' . $e->getMessage()]);
}
