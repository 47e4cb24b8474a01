<?php

/**
 * Client.php -- Herald's FastCGI API (publish, presence) and the secret's
 * local uses (connection and channel tokens, checking RPC requests).
 *
 * Every call validates its input before anything is sent, then sends one
 * request through its transport: by default a FastCgiTransport that opens
 * one connection to the API socket per call, or keeps one per php-fpm
 * worker with the persistent option. Errors are Herald\Exception (bad
 * input), ApiException (Herald answered with an error status, which is the
 * exception's code), ConnectionException (socket, timeout, connection
 * closed early) or ProtocolException (an answer that makes no sense: bad
 * FastCGI framing, a body that is not JSON or lacks the expected fields, a
 * status and body that disagree). Query strings are built with RFC 3986
 * percent-encoding (rawurlencode), so user ids with "&", "=", "%", spaces
 * or UTF-8 survive.
 *
 *   $herald = new Herald\Client(['socket' => '/run/herald/api.sock']);
 *   $herald->publish([42, 'bob'], 'order.shipped', ['id' => 7]);
 *   $herald->publishChannel('team:12', 'deploy', ['v' => 3]);
 *   $members = $herald->presence('room:1');
 *   $token = $herald->token(42);
 */

declare(strict_types=1);

namespace Herald;

final class Client implements ClientInterface
{
    private const OPTIONS = ['socket', 'secret', 'connect_timeout', 'timeout', 'connector', 'persistent', 'transport'];
    /** The options a given transport replaces. */
    private const TRANSPORT_OPTIONS = ['socket', 'connect_timeout', 'timeout', 'connector', 'persistent'];
    private const MESSAGE_KEYS = ['users', 'broadcast', 'channel', 'event', 'data'];
    private const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;
    private const MAX_EVENT = 200;
    private const BAD_EVENT = 'event must be a UTF-8 string of 1 to 200 bytes without control characters';

    private TransportInterface $transport;
    private ?string $secret;

    /**
     * @param array<string, mixed> $options socket (default env HERALD_SOCKET, else
     *        "/tmp/herald.sock"), secret (default env HERALD_SECRET, else none),
     *        connect_timeout (seconds, 1.0), timeout (seconds for the whole
     *        exchange once connected, 3.0), persistent (bool, false: keep one
     *        connection per socket across calls and php-fpm pages, see
     *        FastCgiTransport), connector (a callable
     *        fn(string $socket, float $connectTimeout): resource replacing the
     *        Unix socket, for tests), or instead of all these but secret,
     *        transport (a TransportInterface the requests go through)
     *
     * @throws Exception on an unknown option, a value of the wrong type, or
     *         transport given with an option it replaces
     */
    public function __construct(array $options = [])
    {
        foreach (array_keys($options) as $name) {
            if (!in_array($name, self::OPTIONS, true)) {
                throw new Exception("unknown option \"$name\"");
            }
        }
        $secret = $options['secret'] ?? (getenv('HERALD_SECRET') ?: null);
        if ($secret !== null && (!is_string($secret) || $secret === '')) {
            throw new Exception('option "secret" must be a non-empty string');
        }
        $this->secret = $secret;
        if (array_key_exists('transport', $options)) {
            $this->transport = self::givenTransport($options);
            return;
        }
        $socket = $options['socket'] ?? (getenv('HERALD_SOCKET') ?: '/tmp/herald.sock');
        if (!is_string($socket) || $socket === '') {
            throw new Exception('option "socket" must be a non-empty string');
        }
        $connector = $options['connector'] ?? null;
        if ($connector !== null && !is_callable($connector)) {
            throw new Exception('option "connector" must be callable');
        }
        $persistent = $options['persistent'] ?? false;
        if (!is_bool($persistent)) {
            throw new Exception('option "persistent" must be true or false');
        }
        $this->transport = new FastCgiTransport(
            $socket,
            self::seconds($options, 'connect_timeout', 1.0),
            self::seconds($options, 'timeout', 3.0),
            $connector,
            $persistent
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
     * @throws Exception on invalid input; ApiException, ConnectionException or ProtocolException from the call
     */
    public function publish(string|int|array $users, string $event, mixed $data = null): int
    {
        $event = self::event($event);
        $message = ['users' => self::users($users), 'event' => $event, 'data' => $data];
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
     * @throws Exception on invalid input; ApiException, ConnectionException or ProtocolException from the call
     */
    public function broadcast(string $event, mixed $data = null): int
    {
        $message = ['broadcast' => true, 'event' => self::event($event), 'data' => $data];
        return self::delivered($this->post($message)['delivered'] ?? null);
    }

    /**
     * Send an event to every connection subscribed to a channel.
     *
     * @param string $channel the channel name: 1 to 128 bytes of A-Z a-z 0-9 _ - . : @ / = +
     * @param string $event   the event name, 1 to 200 bytes
     * @param mixed  $data    any JSON-encodable value
     *
     * @return int the number of connections the event was queued to
     *
     * @throws Exception on invalid input; ApiException, ConnectionException or ProtocolException from the call
     */
    public function publishChannel(string $channel, string $event, mixed $data = null): int
    {
        $event = self::event($event);
        $message = ['channel' => Token::channel($channel), 'event' => $event, 'data' => $data];
        return self::delivered($this->post($message)['delivered'] ?? null);
    }

    /**
     * Send several events in one request.
     *
     * @param array<array<string, mixed>> $messages a list of ['users' => ..., 'event' => ...,
     *        'data' => ...], ['broadcast' => true, 'event' => ..., 'data' => ...] or
     *        ['channel' => ..., 'event' => ..., 'data' => ...]
     *
     * @return list<int> connections reached, one count per message, in order
     *
     * @throws Exception on invalid input; ApiException, ConnectionException or ProtocolException from the call
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
            throw new ProtocolException('unexpected answer from herald: "delivered" is not one count per message');
        }
        return array_map([self::class, 'delivered'], array_values($delivered));
    }

    /**
     * Sign a connection token for a user (HS256, see Token::sign()).
     *
     * @param string|int           $userId the user id
     * @param int                  $ttl    seconds until it expires
     * @param array<string, mixed> $claims extra claims (not "sub", nor "channel": that is a
     *                                     channel token, channelToken())
     *
     * @return string the token, for ws://host/ws?token=... or the subprotocol
     *
     * @throws Exception when no secret is configured or an argument is invalid
     */
    public function token(string|int $userId, int $ttl = 3600, array $claims = []): string
    {
        return Token::sign($this->secret(), $userId, $ttl, $claims);
    }

    /**
     * Sign a channel token: it lets this user's connections subscribe to one
     * channel (the subscribe command's "token"), whatever the connection
     * token grants. See Token::signChannel().
     *
     * @param string|int $userId  the user id (must be the connection's user)
     * @param string     $channel the channel name (not a pattern)
     * @param int        $ttl     seconds until it expires
     *
     * @return string the token
     *
     * @throws Exception when no secret is configured or an argument is invalid
     */
    public function channelToken(string|int $userId, string $channel, int $ttl = 3600): string
    {
        return Token::signChannel($this->secret(), $userId, $channel, $ttl);
    }

    /**
     * List the members of a presence channel.
     *
     * @param string $channel a channel matching presence_channels in Herald's config
     *
     * @return list<array{user: string, info: mixed, connections: int}> one entry per user;
     *         info is the token's "info" claim, or null when it had none
     *
     * @throws Exception on an invalid name; ApiException (400 for a channel that is not a
     *         presence channel), ConnectionException or ProtocolException from the call
     */
    public function presence(string $channel): array
    {
        $answer = $this->call('GET', '/presence?' . self::query(['channel' => Token::channel($channel)]), '');
        $members = $answer['members'] ?? null;
        if (!is_array($members) || !array_is_list($members)) {
            throw new ProtocolException('unexpected answer from herald: "members" is not a list');
        }
        $out = [];
        foreach ($members as $m) {
            if (!is_array($m) || !is_string($m['user'] ?? null)
                || !is_int($m['connections'] ?? null) || $m['connections'] < 0) {
                throw new ProtocolException('unexpected answer from herald: a member is not {user, info, connections}');
            }
            $out[] = ['user' => $m['user'], 'info' => $m['info'] ?? null, 'connections' => $m['connections']];
        }
        return $out;
    }

    /**
     * Ask whether a user has at least one open connection.
     *
     * @param string|int $userId the user id
     *
     * @return array{online: bool, connections: int}
     *
     * @throws Exception on an invalid user id; ApiException, ConnectionException or ProtocolException from the call
     */
    public function online(string|int $userId): array
    {
        $answer = $this->call('GET', '/presence?' . self::query(['user' => Token::userId($userId)]), '');
        $online = $answer['online'] ?? null;
        $connections = $answer['connections'] ?? null;
        if (!is_bool($online) || !is_int($connections) || $connections < 0) {
            throw new ProtocolException('unexpected answer from herald: no "online" flag and "connections" count');
        }
        return ['online' => $online, 'connections' => $connections];
    }

    /**
     * Check an RPC or hook request from Herald with this client's secret
     * (see Rpc::request()) and return its body.
     *
     * @param string      $body      the raw request body
     * @param string|null $signature HERALD_SIGNATURE, or null when absent
     * @param int|null    $now       the current time (default: time())
     *
     * @return array<string, mixed> the decoded body: type, method, user, connection, data, time...
     *
     * @throws Exception when no secret is configured or the request is not Herald's
     */
    public function rpcRequest(string $body, ?string $signature, ?int $now = null): array
    {
        return Rpc::request($this->secret(), $body, $signature, $now);
    }

    /**
     * Ask whether Herald is up.
     *
     * @return array<string, mixed> {"ok": true, "uptime": seconds, "workers": N}
     *
     * @throws ApiException|ConnectionException|ProtocolException when the call fails
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
     * @throws ApiException|ConnectionException|ProtocolException when the call fails
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
        if (!is_string($event)) {
            throw new Exception(self::BAD_EVENT);
        }
        $event = self::event($event);
        $targets = array_intersect(['users', 'broadcast', 'channel'], array_keys($message));
        if (count($targets) > 1) {
            throw new Exception('give exactly one of "users", "broadcast" => true and "channel", not '
                . implode(' and ', array_map(fn ($t) => "\"$t\"", $targets)));
        }
        $out = [];
        if (array_key_exists('broadcast', $message)) {
            if ($message['broadcast'] !== true) {
                throw new Exception('"broadcast" must be true');
            }
            $out['broadcast'] = true;
        } elseif (array_key_exists('channel', $message)) {
            if (!is_string($message['channel'])) {
                throw new Exception('channel must be a string, got ' . get_debug_type($message['channel']));
            }
            $out['channel'] = Token::channel($message['channel']);
        } else {
            $out['users'] = self::users($message['users'] ?? null);
        }
        $out['event'] = $event;
        $out['data'] = $message['data'] ?? null;
        return $out;
    }

    /** An event name, checked: 1 to 200 bytes of UTF-8 without control characters. */
    private static function event(string $event): string
    {
        /* with /u, a string that is not UTF-8 does not match */
        if ($event === '' || strlen($event) > self::MAX_EVENT || !preg_match('/^[^\x00-\x1f\x7f]+$/Du', $event)) {
            throw new Exception(self::BAD_EVENT);
        }
        return $event;
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
        $out = [];
        foreach ($users as $user) {
            $out[] = Token::userId($user);
        }
        return $out;
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
     * One API call: a 200 answer with {"ok": true} is returned decoded, an error
     * status is an ApiException, anything else a ProtocolException.
     *
     * @return array<string, mixed>
     */
    private function call(string $method, string $path, string $body): array
    {
        $response = $this->transport->request($method, $path, $body);
        $answer = json_decode($response['body'], true, 64);
        if ($response['status'] !== 200) {
            if (is_array($answer) && ($answer['ok'] ?? null) === true) {
                throw new ProtocolException(
                    "unexpected answer from herald: status {$response['status']} with \"ok\": true"
                );
            }
            $error = is_array($answer) && is_string($answer['error'] ?? null)
                ? $answer['error']
                : (trim(substr($response['body'], 0, 200)) ?: 'no error text');
            throw new ApiException($error, $response['status']);
        }
        if (!is_array($answer) || ($answer['ok'] ?? null) !== true) {
            throw new ProtocolException('unexpected answer from herald: ' . substr($response['body'], 0, 200));
        }
        return $answer;
    }

    /** The configured secret, or an Exception saying how to configure one. */
    private function secret(): string
    {
        if ($this->secret === null) {
            throw new Exception('no secret configured: pass the "secret" option or set HERALD_SECRET');
        }
        return $this->secret;
    }

    /**
     * A query string, percent-encoded as RFC 3986 says ("a b&c" -> "a%20b%26c").
     *
     * @param array<string, string> $params
     */
    private static function query(array $params): string
    {
        return http_build_query($params, '', '&', PHP_QUERY_RFC3986);
    }

    /** A "delivered" count from the answer. */
    private static function delivered(mixed $n): int
    {
        if (!is_int($n) || $n < 0) {
            throw new ProtocolException('unexpected answer from herald: "delivered" is not a count');
        }
        return $n;
    }

    /**
     * The transport option, alone among the options it replaces.
     *
     * @param array<string, mixed> $options
     */
    private static function givenTransport(array $options): TransportInterface
    {
        $transport = $options['transport'];
        if (!$transport instanceof TransportInterface) {
            throw new Exception('option "transport" must be a Herald\\TransportInterface, got '
                . get_debug_type($transport));
        }
        $clash = array_intersect(self::TRANSPORT_OPTIONS, array_keys($options));
        if ($clash !== []) {
            throw new Exception('option "transport" replaces "' . implode('", "', $clash) . '": give one or the other');
        }
        return $transport;
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
