<?php

/**
 * fastcgi-server.php -- a scripted FastCGI responder on a Unix socket, run as
 * its own PHP CLI process by FastCgiServer for the kept-connection tests.
 *
 *   php fastcgi-server.php SOCKET LOG PLAYS_JSON
 *
 * Serves any number of connections at once (one stream_select loop, so it
 * never blocks on one). The n-th whole request it receives, on whatever
 * connection, is answered by the n-th play; past the list, plainly. An answer
 * is STDOUT "Status: 200" with {"ok":true,"delivered":n}, an empty STDOUT and
 * END_REQUEST, all with the request's id; with FCGI_KEEP_CONN the connection
 * stays open for the next request, else it is closed. Plays:
 *
 *   answer    as above
 *   leftover  the answer, then 8 bytes nobody asked for
 *   late_leftover  the answer now, 8 bytes nobody asked for after "delay" seconds
 *   wrong_id  the answer with id + 1
 *   stall     the answer's first record now, the rest after "delay" seconds
 *   close     the answer, then close the connection
 *   shut_rd   shutdown(SHUT_RD), then the answer: the client's next write fails
 *
 * Every event is one JSON line appended to LOG: {"ev":"accept","conn":c},
 * {"ev":"request","conn":c,"n":n,"id":id,"keep":bool,"stdin":s,"partial":
 * bytes of an unfinished request at close}, {"ev":"later","conn":c} once
 * delayed bytes are written, and {"ev":"close","conn":c}.
 */

declare(strict_types=1);

[, $path, $logPath, $playsJson] = $argv;
$plays = json_decode($playsJson, true, 8, JSON_THROW_ON_ERROR);
@unlink($path);
$server = stream_socket_server("unix://$path", $errno, $errstr);
if ($server === false) {
    fwrite(STDERR, "cannot listen on $path: $errstr\n");
    exit(1);
}

$log = static function (array $event) use ($logPath): void {
    file_put_contents($logPath, json_encode($event) . "\n", FILE_APPEND | LOCK_EX);
};

/** @var array<int, array{stream: resource, buf: string, keep: bool, id: int, stdin: string, shut: bool}> */
$conns = [];
/** @var list<array{at: float, conn: int, bytes: string, close: bool}> answer parts not yet due */
$later = [];
$next = 0;
$served = 0;

$close = static function (int $c) use (&$conns, $log): void {
    if (!isset($conns[$c])) {
        return;
    }
    $log(['ev' => 'close', 'conn' => $c, 'partial' => strlen($conns[$c]['buf'])]);
    fclose($conns[$c]['stream']);
    unset($conns[$c]);
};

$record = static function (int $type, string $content, int $id): string {
    $pad = (8 - strlen($content) % 8) % 8;
    return pack('CCnnCx', 1, $type, $id, strlen($content), $pad) . $content . str_repeat("\0", $pad);
};

/* Answer request number $n on connection $c as its play says. */
$answer = static function (int $c, int $n, int $id, bool $keep) use (
    &$conns,
    &$later,
    $plays,
    $record,
    $close
): void {
    $play = $plays[$n - 1] ?? ['do' => 'answer'];
    $do = $play['do'];
    $rid = $do === 'wrong_id' ? ($id % 0xffff) + 1 : $id;
    $head = $record(6, "Status: 200\r\nContent-Type: application/json\r\n\r\n{\"ok\":true,\"delivered\":$n}", $rid);
    $tail = $record(6, '', $rid) . $record(3, pack('NCx3', 0, 0), $rid);
    $s = $conns[$c]['stream'];
    if ($do === 'stall') {
        fwrite($s, $head);
        $later[] = ['at' => microtime(true) + (float) $play['delay'], 'conn' => $c, 'bytes' => $tail, 'close' => !$keep];
        return;
    }
    if ($do === 'shut_rd') {
        /* before the answer: once the client has it, its next write must fail */
        stream_socket_shutdown($s, STREAM_SHUT_RD);
        $conns[$c]['shut'] = true;
    }
    if ($do === 'late_leftover') {
        $later[] = ['at' => microtime(true) + (float) $play['delay'], 'conn' => $c, 'bytes' => 'LEFTOVER', 'close' => false];
    }
    fwrite($s, $head . $tail . ($do === 'leftover' ? 'LEFTOVER' : ''));
    if ($do === 'close' || !$keep) {
        $close($c);
    }
};

/* Take whole records from a connection's buffer; answer each whole request. */
$parse = static function (int $c) use (&$conns, &$served, $answer, $log): void {
    while (isset($conns[$c]) && strlen($conns[$c]['buf']) >= 8) {
        $h = unpack('Cv/Ctype/nid/nlen/Cpad', $conns[$c]['buf']);
        $size = 8 + $h['len'] + $h['pad'];
        if (strlen($conns[$c]['buf']) < $size) {
            return;
        }
        $content = substr($conns[$c]['buf'], 8, $h['len']);
        $conns[$c]['buf'] = (string) substr($conns[$c]['buf'], $size);
        if ($h['type'] === 1) {
            $conns[$c]['keep'] = (ord($content[2]) & 1) === 1;
            $conns[$c]['id'] = $h['id'];
            $conns[$c]['stdin'] = '';
        } elseif ($h['type'] === 5 && $content !== '') {
            $conns[$c]['stdin'] .= $content;
        } elseif ($h['type'] === 5) {
            $n = ++$served;
            $keep = $conns[$c]['keep'];
            $log(['ev' => 'request', 'conn' => $c, 'n' => $n, 'id' => $h['id'], 'keep' => $keep,
                'stdin' => $conns[$c]['stdin']]);
            $answer($c, $n, $h['id'], $keep);
        }
    }
};

while (true) {
    $read = [$server];
    foreach ($conns as $conn) {
        if (!$conn['shut']) {
            $read[] = $conn['stream'];
        }
    }
    $write = $except = null;
    $wait = $later === [] ? 1.0 : max(0.0, min(array_column($later, 'at')) - microtime(true));
    if (@stream_select($read, $write, $except, (int) $wait, (int) (fmod($wait, 1.0) * 1e6)) === false) {
        continue;
    }
    foreach ($later as $i => $part) {
        if ($part['at'] <= microtime(true)) {
            unset($later[$i]);
            if (isset($conns[$part['conn']])) {
                @fwrite($conns[$part['conn']]['stream'], $part['bytes']);
                $log(['ev' => 'later', 'conn' => $part['conn']]);
                if ($part['close']) {
                    $close($part['conn']);
                }
            }
        }
    }
    foreach ($read as $s) {
        if ($s === $server) {
            $c = ++$next;
            $conns[$c] = ['stream' => stream_socket_accept($server), 'buf' => '', 'keep' => false, 'id' => 0,
                'stdin' => '', 'shut' => false];
            $log(['ev' => 'accept', 'conn' => $c]);
            continue;
        }
        $c = 0;
        foreach ($conns as $k => $conn) {
            if ($conn['stream'] === $s) {
                $c = $k;
            }
        }
        $data = @fread($s, 65536);
        if ($data === '' || $data === false) {
            $close($c);
            continue;
        }
        $conns[$c]['buf'] .= $data;
        $parse($c);
    }
}
