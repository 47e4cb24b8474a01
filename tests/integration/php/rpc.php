<?php

/**
 * rpc.php -- the PHP side of the RPC and hook tests (tests/integration/7x-*.py), run by
 * the private php-fpm of tests/lib/phpfpm.py, the way a site's script answers Herald.
 *
 * Settings come from the JSON file named by $_SERVER['HERALD_TEST_CONF'] (the pool's env):
 * "secret" (Herald's, for herald_rpc_request()) and "record" (a file to which every request
 * that passes the signature check is appended as one JSON line, so the tests can see what
 * PHP was sent). A request that fails the check is recorded with "rejected": true.
 *
 * RPC methods (body "method"):
 *   echo      reply with what PHP saw: the body's type, method, user, connection, data
 *             (exactly as sent: {} stays {}), time, and REQUEST_URI
 *   slow      sleep data.ms milliseconds (default 3000), then reply {"slept": ms}
 *   fatal     call an undefined function: a fatal error, HTTP 500
 *   notjson   print plain text with a 200
 *   apperror  herald_rpc_error(data.code ?? 'out_of_stock', data.message ?? ..., data.status ?? 400)
 *   badcode   a 400 with {"code": "Not A Code!", ...}, a code Herald must not relay
 *   status    a bare HTTP status (data.status, default 503) with a JSON body of no error
 *   big       reply a string of data.bytes bytes (default 2 MiB)
 *   (other)   herald_rpc_error('no_such_method', ...)
 *
 * Hooks: connect and disconnect are recorded and answered true (connect after 0.5 s for users
 * whose id starts with "slowconnect-"). subscribe decides by the
 * channel's first segment (up to ':'):
 *   hook-allow  true            hook-obj   {"allow": true}
 *   hook-deny   false           hook-no    {"allow": false}
 *   hook-slow   sleep 3 s, then true (beyond the tests' rpc_timeout)
 *   anything else: false
 */

declare(strict_types=1);

require __DIR__ . '/../../../php-client/herald.php';

$conf = json_decode((string) file_get_contents((string) getenv('HERALD_TEST_CONF')), true);
herald_configure(['secret' => $conf['secret'] ?? 'unset-secret-unset-secret']);

/**
 * Append one JSON line describing this request to the record file.
 *
 * @param array<string, mixed> $entry
 */
function record(array $conf, array $entry): void
{
    $entry['server'] = [
        'REQUEST_METHOD' => $_SERVER['REQUEST_METHOD'] ?? null,
        'REQUEST_URI' => $_SERVER['REQUEST_URI'] ?? null,
        'CONTENT_TYPE' => $_SERVER['CONTENT_TYPE'] ?? null,
        'CONTENT_LENGTH' => $_SERVER['CONTENT_LENGTH'] ?? null,
        'SERVER_SOFTWARE' => $_SERVER['SERVER_SOFTWARE'] ?? null,
        'GATEWAY_INTERFACE' => $_SERVER['GATEWAY_INTERFACE'] ?? null,
        'SERVER_PROTOCOL' => $_SERVER['SERVER_PROTOCOL'] ?? null,
        'REMOTE_ADDR' => $_SERVER['REMOTE_ADDR'] ?? null,
        'HAS_SIGNATURE' => isset($_SERVER['HERALD_SIGNATURE']),
    ];
    $entry['pid'] = getmypid();
    $entry['at'] = microtime(true);
    file_put_contents($conf['record'], json_encode($entry) . "\n", FILE_APPEND | LOCK_EX);
}

$req = herald_rpc_request();
if ($req === null) {
    record($conf, ['rejected' => true]);
    return;
}
record($conf, $req);

$type = $req['type'] ?? '';
$data = $req['data'] ?? null;

if ($type === 'connect' || $type === 'disconnect') {
    if ($type === 'connect' && str_starts_with((string) ($req['user'] ?? ''), 'slowconnect-')) {
        usleep(500000);
    }
    herald_rpc_reply(true);
    return;
}

if ($type === 'subscribe') {
    $kind = explode(':', (string) ($req['channel'] ?? ''), 2)[0];
    switch ($kind) {
        case 'hook-allow':
            herald_rpc_reply(true);
            break;
        case 'hook-obj':
            herald_rpc_reply(['allow' => true]);
            break;
        case 'hook-no':
            herald_rpc_reply(['allow' => false]);
            break;
        case 'hook-slow':
            usleep(3000000);
            herald_rpc_reply(true);
            break;
        default:
            herald_rpc_reply(false);
    }
    return;
}

switch ($req['method'] ?? '') {
    case 'echo':
        // data decoded again as objects, so {} stays {} rather than becoming [].
        $raw = json_decode((string) file_get_contents('php://input'));
        herald_rpc_reply([
            'type' => $type,
            'method' => $req['method'],
            'user' => $req['user'] ?? null,
            'connection' => $req['connection'] ?? null,
            'data' => $raw->data ?? null,
            'time' => $req['time'] ?? null,
            'uri' => $_SERVER['REQUEST_URI'] ?? null,
        ]);
        break;
    case 'slow':
        $ms = is_array($data) && isset($data['ms']) ? (int) $data['ms'] : 3000;
        usleep($ms * 1000);
        herald_rpc_reply(['slept' => $ms]);
        break;
    case 'fatal':
        // An undefined function: an uncaught Error, so PHP ends with a fatal error (500).
        herald_tests_no_such_function();
        break;
    case 'notjson':
        header('Content-Type: text/plain');
        echo "this is not JSON\n";
        break;
    case 'apperror':
        herald_rpc_error(
            (string) ($data['code'] ?? 'out_of_stock'),
            (string) ($data['message'] ?? 'no more items'),
            (int) ($data['status'] ?? 400)
        );
        break;
    case 'badcode':
        // By hand: herald_rpc_error() itself refuses such a code. Herald must not relay it.
        http_response_code(400);
        header('Content-Type: application/json');
        echo json_encode(['code' => 'Not A Code!', 'message' => 'this code breaks the rules']);
        break;
    case 'status':
        http_response_code(is_array($data) && isset($data['status']) ? (int) $data['status'] : 503);
        header('Content-Type: application/json');
        echo json_encode(['busy' => true]);
        break;
    case 'big':
        $n = is_array($data) && isset($data['bytes']) ? (int) $data['bytes'] : 2 * 1024 * 1024;
        herald_rpc_reply(str_repeat('x', $n));
        break;
    default:
        herald_rpc_error('no_such_method', 'unknown method ' . ($req['method'] ?? ''));
}
