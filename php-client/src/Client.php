<?php

/**
 * Client.php -- publish to Herald's FastCGI API and sign connection tokens.
 *
 * Every call validates its input before anything is sent, opens one
 * connection to the API socket, sends one request and closes. Errors are
 * Herald\Exception (bad input), ApiException (Herald answered with an error
 * status, which is the exception's code) or ConnectionException (socket,
 * timeout, framing).
 *
 *   $herald = new Herald\Client(['socket' => '/run/herald/api.sock']);
 *   $herald->publish([42, 'bob'], 'order.shipped', ['id' => 7]);
 *   $token = $herald->token(42);
 */

declare(strict_types=1);

namespace Herald;

final class Client
{
    private const OPTIONS = ['socket', 'secret', 'connect_timeout', 'timeout', 'connector'];
    private const MESSAGE_KEYS = ['users', 'broadcast', 'event', 'data'];
    private const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;
    private const MAX_EVENT = 200;

    private FastCgi $fastCgi;
    private ?string $secret;

    /**
     * @param array<string, mixed> $options socket (default env HERALD_SOCKET, else
     *        "/tmp/herald.sock"), secret (default env HERALD_SECRET, else none),
     *        connect_timeout (seconds, 1.0), timeout (seconds for the whole
     *        exchange once connected, 3.0), connector (a callable
     *        fn(string $socket, float $connectTimeout): resource replacing the
     *        Unix socket, for tests)
     *
     * @throws Exception on an unknown option or a value of the wrong type
     */
    public function __construct(array $options = [])
    {
        foreach (array_keys($options) as $name) {
            if (!in_array($name, self::OPTIONS, true)) {
                throw new Exception("unknown option \"$name\"");
            }
        }
        $socket = $options['socket'] ?? (getenv('HERALD_SOCKET') ?: '/tmp/herald.sock');
        $secret = $options['secret'] ?? (getenv('HERALD_SECRET') ?: null);
        if (!is_string($socket) || $socket === '') {
            throw new Exception('option "socket" must be a non-empty string');
        }
        if ($secret !== null && (!is_string($secret) || $secret === '')) {
            throw new Exception('option "secret" must be a non-empty string');
        }
        $connector = $options['connector'] ?? null;
        if ($connector !== null && !is_callable($connector)) {
            throw new Exception('option "connector" must be callable');
        }
        $this->secret = $secret;
        $this->fastCgi = new FastCgi(
            $socket,
            self::seconds($options, 'connect_timeout', 1.0),
            self::seconds($options, 'timeout', 3.0),
            $connector
        );
    }

    /**
     * Send an event to every connection of one or more users.
     *
     * @param string|int|array<string|int> $users a user id or a non-empty list of them
     * @param string                       $event the event name, 1 to 200 bytes
     * @param mixed                        $data  any JSON-encodable value
     *
     * @return int the number of connections the event was queued to
     *
     * @throws Exception on invalid input; ApiException or ConnectionException from the call
     */
    public function publish(string|int|array $users, string $event, mixed $data = null): int
    {
        $message = self::message(['users' => $users, 'event' => $event, 'data' => $data]);
        return self::delivered($this->post($message)['delivered'] ?? null);
    }

    /**
     * Send an event to every connection.
     *
     * @param string $event the event name, 1 to 200 bytes
     * @param mixed  $data  any JSON-encodable value
     *
     * @return int the number of connections the event was queued to
     *
     * @throws Exception on invalid input; ApiException or ConnectionException from the call
     */
    public function broadcast(string $event, mixed $data = null): int
    {
        $message = self::message(['broadcast' => true, 'event' => $event, 'data' => $data]);
        return self::delivered($this->post($message)['delivered'] ?? null);
    }

    /**
     * Send several events in one request.
     *
     * @param array<array<string, mixed>> $messages a list of ['users' => ..., 'event' => ...,
     *        'data' => ...] or ['broadcast' => true, 'event' => ..., 'data' => ...]
     *
     * @return list<int> connections reached, one count per message, in order
     *
     * @throws Exception on invalid input; ApiException or ConnectionException from the call
     */
    public function publishBatch(array $messages): array
    {
        if ($messages === []) {
            return [];
        }
        if (!array_is_list($messages)) {
            throw new Exception('publishBatch() takes a list of messages');
        }
        $batch = [];
        foreach ($messages as $i => $message) {
            try {
                if (!is_array($message)) {
                    throw new Exception('must be an array, got ' . get_debug_type($message));
                }
                $batch[] = self::message($message);
            } catch (Exception $e) {
                throw new Exception("message $i: " . $e->getMessage(), 0, $e);
            }
        }
        $delivered = $this->post($batch)['delivered'] ?? null;
        if (!is_array($delivered) || count($delivered) !== count($batch)) {
            throw new Exception('unexpected answer from herald: "delivered" is not one count per message');
        }
        return array_map([self::class, 'delivered'], array_values($delivered));
    }

    /**
     * Sign a connection token for a user (HS256, see Token::sign()).
     *
     * @param string|int           $userId the user id
     * @param int                  $ttl    seconds until it expires
     * @param array<string, mixed> $claims extra claims (not "sub")
     *
     * @return string the token, for ws://host/ws?token=... or the subprotocol
     *
     * @throws Exception when no secret is configured or an argument is invalid
     */
    public function token(string|int $userId, int $ttl = 3600, array $claims = []): string
    {
        if ($this->secret === null) {
            throw new Exception('no secret configured: pass the "secret" option or set HERALD_SECRET');
        }
        return Token::sign($this->secret, $userId, $ttl, $claims);
    }

    /**
     * Ask whether Herald is up.
     *
     * @return array<string, mixed> {"ok": true, "uptime": seconds, "workers": N}
     *
     * @throws ApiException|ConnectionException when the call fails
     */
    public function health(): array
    {
        return $this->call('GET', '/health', '');
    }

    /**
     * Fetch Herald's counters.
     *
     * @return array<string, mixed> connections, users, published, delivered, refusals...
     *
     * @throws ApiException|ConnectionException when the call fails
     */
    public function stats(): array
    {
        return $this->call('GET', '/stats', '');
    }

    /**
     * Validate one message and return it as sent: user ids as strings, data present.
     *
     * @param array<mixed> $message
     *
     * @return array<string, mixed>
     */
    private static function message(array $message): array
    {
        foreach (array_keys($message) as $key) {
            if (!in_array($key, self::MESSAGE_KEYS, true)) {
                throw new Exception("unknown message key \"$key\"");
            }
        }
        $event = $message['event'] ?? null;
        if (!is_string($event) || $event === '' || strlen($event) > self::MAX_EVENT
            || !preg_match('//u', $event) || preg_match('/[\x00-\x1f\x7f]/', $event)) {
            throw new Exception('event must be a UTF-8 string of 1 to 200 bytes without control characters');
        }
        $out = [];
        if (array_key_exists('broadcast', $message)) {
            if ($message['broadcast'] !== true || array_key_exists('users', $message)) {
                throw new Exception('give either "users" or "broadcast" => true, not both');
            }
            $out['broadcast'] = true;
        } else {
            $out['users'] = self::users($message['users'] ?? null);
        }
        $out['event'] = $event;
        $out['data'] = $message['data'] ?? null;
        return $out;
    }

    /**
     * @return list<string>
     */
    private static function users(mixed $users): array
    {
        if (is_string($users) || is_int($users)) {
            return [Token::userId($users)];
        }
        if (!is_array($users) || $users === []) {
            throw new Exception('users must be a user id or a non-empty list of them');
        }
        return array_map([Token::class, 'userId'], array_values($users));
    }

    /**
     * POST a message or a batch to /publish.
     *
     * @param array<mixed> $body
     *
     * @return array<string, mixed>
     */
    private function post(array $body): array
    {
        try {
            $json = json_encode($body, self::JSON_FLAGS);
        } catch (\JsonException $e) {
            throw new Exception('data cannot be encoded as JSON: ' . $e->getMessage(), 0, $e);
        }
        return $this->call('POST', '/publish', $json);
    }

    /**
     * One API call: a 200 answer with {"ok": true} is returned decoded, anything else throws.
     *
     * @return array<string, mixed>
     */
    private function call(string $method, string $path, string $body): array
    {
        $response = $this->fastCgi->request($method, $path, $body);
        $answer = json_decode($response['body'], true, 64);
        if ($response['status'] !== 200) {
            $error = is_array($answer) && is_string($answer['error'] ?? null)
                ? $answer['error']
                : (trim(substr($response['body'], 0, 200)) ?: 'no error text');
            throw new ApiException($error, $response['status']);
        }
        if (!is_array($answer) || ($answer['ok'] ?? null) !== true) {
            throw new Exception('unexpected answer from herald: ' . substr($response['body'], 0, 200));
        }
        return $answer;
    }

    /** A "delivered" count from the answer. */
    private static function delivered(mixed $n): int
    {
        if (!is_int($n) || $n < 0) {
            throw new Exception('unexpected answer from herald: "delivered" is not a count');
        }
        return $n;
    }

    /**
     * @param array<string, mixed> $options
     */
    private static function seconds(array $options, string $name, float $default): float
    {
        $value = $options[$name] ?? $default;
        if ((!is_int($value) && !is_float($value)) || $value <= 0) {
            throw new Exception("option \"$name\" must be a positive number of seconds");
        }
        return (float) $value;
    }
}
