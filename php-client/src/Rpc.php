<?php

/**
 * Rpc.php -- the PHP end of Herald's RPC and hooks: check that a request
 * comes from Herald, and answer it.
 *
 * Herald calls one PHP script (rpc_script) through php-fpm for every "rpc"
 * command and every enabled hook. The body is JSON, {"type", "method", "user",
 * "connection", "data", "time", ...}, and the FastCGI parameter
 * HERALD_SIGNATURE ($_SERVER['HERALD_SIGNATURE']) is the lowercase hex
 * HMAC-SHA256 of the raw body with the site's secret. request() recomputes it
 * and compares with hash_equals, never ===, then checks that "time" is within
 * 60 seconds of now, so a captured request cannot be replayed later.
 *
 * The answer is the script's output: reply() prints JSON with status 200,
 * which reaches the browser as {"op":"reply","ref":N,"data":...}; error()
 * prints {"code","message"} with a status of 400 or more, which reaches it as
 * {"op":"error","ref":N,"code":...,"message":...}. Both check everything
 * before printing anything, and refuse to answer once output has started:
 * the status and Content-Type could no longer be sent, and an error would
 * silently become a reply.
 *
 *   $request = Herald\Rpc::request($secret, file_get_contents('php://input'),
 *                                  $_SERVER['HERALD_SIGNATURE'] ?? null);
 *   Herald\Rpc::reply(['tasks' => []]);
 */

declare(strict_types=1);

namespace Herald;

final class Rpc
{
    /** Seconds a request's "time" may differ from ours, either way. */
    public const MAX_SKEW = 60;

    private const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;

    /**
     * Check that a request comes from Herald and decode it.
     *
     * The signature is checked before the body is parsed, so nothing from an
     * unsigned body is ever looked at.
     *
     * @param string      $secret    the site's secret, as the daemon has it
     * @param string      $body      the raw request body (php://input)
     * @param string|null $signature HERALD_SIGNATURE: lowercase hex HMAC-SHA256 of the body
     * @param int|null    $now       the current time (default: time())
     *
     * @return array<string, mixed> the body: type, method, user, connection, data, time...
     *
     * @throws Exception when the secret is empty, the signature is missing or wrong, the body
     *                   is not a JSON object, or its "time" is missing or more than 60 s off
     */
    public static function request(string $secret, string $body, ?string $signature, ?int $now = null): array
    {
        if ($secret === '') {
            throw new Exception('the secret is empty');
        }
        if ($signature === null || $signature === '') {
            throw new Exception('no HERALD_SIGNATURE: not a request from Herald');
        }
        if (!hash_equals(hash_hmac('sha256', $body, $secret), $signature)) {
            throw new Exception('HERALD_SIGNATURE does not match the body (another secret?)');
        }
        try {
            $request = json_decode($body, true, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new Exception('the body is not JSON: ' . $e->getMessage(), 0, $e);
        }
        if (!is_array($request) || ltrim($body, " \t\r\n")[0] !== '{') {
            throw new Exception('the body is not a JSON object');
        }
        $time = $request['time'] ?? null;
        if (!is_int($time)) {
            throw new Exception('the body has no integer "time"');
        }
        $skew = ($now ?? time()) - $time;
        if (abs($skew) > self::MAX_SKEW) {
            throw new Exception(
                "the request's time is $skew s off (at most 60 allowed): replayed, or a clock is wrong"
            );
        }
        return $request;
    }

    /**
     * Answer with data: status 200, Content-Type application/json, the JSON.
     *
     * @param mixed $data any JSON-encodable value (null, a scalar, an array, an object)
     *
     * @return void
     *
     * @throws Exception when $data cannot be encoded, or output has already started
     *                   (nothing is printed then)
     */
    public static function reply(mixed $data): void
    {
        try {
            $json = json_encode($data, self::JSON_FLAGS);
        } catch (\JsonException $e) {
            throw new Exception('data cannot be encoded as JSON: ' . $e->getMessage(), 0, $e);
        }
        self::send(200, $json);
    }

    /**
     * Answer with an error the browser sees as {"op":"error","code","message"}.
     *
     * @param string $code    1 to 64 bytes of a-z 0-9 _ . - (such as "not_found")
     * @param string $message for people; invalid UTF-8 is replaced with U+FFFD
     * @param int    $status  the HTTP status, 400 to 599
     *
     * @return void
     *
     * @throws Exception on an invalid code or status, or when output has already started
     *                   (nothing is printed then)
     */
    public static function error(string $code, string $message, int $status = 400): void
    {
        if (!preg_match('/^[a-z0-9_.-]{1,64}$/D', $code)) {
            throw new Exception('an error code must be 1 to 64 bytes of a-z 0-9 _ . -, got '
                . json_encode($code, JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE));
        }
        if ($status < 400 || $status > 599) {
            throw new Exception("an error status must be 400 to 599, got $status");
        }
        $json = json_encode(['code' => $code, 'message' => $message], self::JSON_FLAGS | JSON_INVALID_UTF8_SUBSTITUTE);
        self::send($status, $json);
    }

    /** Print the answer with its status and Content-Type, or throw if it is too late to. */
    private static function send(int $status, string $json): void
    {
        if (headers_sent($file, $line)) {
            $where = $file !== '' ? " at $file:$line" : '';
            throw new Exception("cannot answer: output started$where before the answer");
        }
        http_response_code($status);
        header('Content-Type: application/json');
        echo $json;
    }
}
