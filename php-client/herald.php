<?php

/**
 * herald.php -- Herald as plain functions, for pages that must never break.
 *
 *   require_once '/path/to/php-client/herald.php';   // or Composer's autoload
 *   herald_configure(['secret' => '...']);            // optional: env HERALD_SOCKET, HERALD_SECRET
 *   herald_publish(42, 'order.shipped', ['id' => 7]); // int, or false
 *   herald_publish_channel('team:12', 'deploy', 3);   // int, or false
 *   $members = herald_presence('room:1');             // list, or false
 *   $token = herald_token(42);
 *
 * The API functions never throw: on any failure they return false and write
 * exactly one line to the PHP error log, "herald: <what> failed: <reason>"
 * (publish for herald_publish(), herald_broadcast() and
 * herald_publish_channel(); presence for herald_presence() and
 * herald_online()). herald_configure() never throws either ("herald:
 * configure failed: <reason>", configuration left as it was).
 * herald_token() and herald_channel_token() are the exception: signing is
 * local and cannot fail at run time, so a missing secret or an invalid
 * argument is a programming error and throws Herald\Exception.
 *
 * The RPC script Herald calls through php-fpm uses herald_rpc_request(),
 * herald_rpc_reply() and herald_rpc_error(). They never throw either: a
 * request that is not Herald's is logged ("herald: rpc request failed:
 * <reason>"), answered 403 {"code":"forbidden"} and gives null; an answer
 * that cannot be given (data that is not JSON, an invalid error code,
 * output already started) is logged as "herald: rpc answer failed:
 * <reason>" and answered 500 when still possible, which the browser sees as
 * rpc_failed.
 *
 * Works whether it is loaded by Composer ("files" autoload) or simply
 * required: without an autoloader that knows Herald\ it requires the
 * classes itself. Loading it twice, or two copies of it (Composer's plus a
 * plain require of another), is harmless: each function and class is
 * declared only when it does not exist yet, so the first copy loaded wins.
 */

declare(strict_types=1);

use Herald\ApiException;
use Herald\Client;
use Herald\ClientInterface;
use Herald\Rpc;

/* Each class only if no autoloader or earlier copy of this file has it, parents first. */
foreach (['Exception', 'ApiException', 'ConnectionException', 'ProtocolException', 'FastCgi',
          'TransportInterface', 'FastCgiTransport', 'Token', 'Rpc', 'ClientInterface', 'Client'] as $heraldClass) {
    if (!class_exists("Herald\\$heraldClass") && !interface_exists("Herald\\$heraldClass")) {
        require_once __DIR__ . "/src/$heraldClass.php";
    }
}
unset($heraldClass);

if (!function_exists('herald_configure')) {
    /**
     * Configure the shared client. Options as for Herald\Client: socket, secret,
     * connect_timeout, timeout, persistent (keep one connection per php-fpm
     * worker), transport. Or ['client' => $c] alone: the functions then use
     * that Herald\ClientInterface (a fake, in an application's tests). Each
     * call replaces the previous configuration; options left out fall back to
     * the environment and the defaults.
     *
     * @param array<string, mixed> $options
     *
     * @return void
     *
     * @throws void an invalid option is logged and the configuration is kept
     */
    function herald_configure(array $options): void
    {
        try {
            herald_client($options);
        } catch (\Throwable $e) {
            herald_log_failure('configure', $e);
        }
    }
}

if (!function_exists('herald_publish')) {
    /**
     * Send an event to every connection of one or more users.
     *
     * @param string|int|array<string|int> $users a user id or a non-empty list of them
     * @param string                       $event the event name
     * @param mixed                        $data  any JSON-encodable value
     *
     * @return int|false connections the event was queued to, or false (logged)
     *
     * @throws void never: failures are logged and return false
     */
    function herald_publish(string|int|array $users, string $event, mixed $data = null): int|false
    {
        try {
            return herald_client()->publish($users, $event, $data);
        } catch (\Throwable $e) {
            return herald_log_failure('publish', $e);
        }
    }
}

if (!function_exists('herald_broadcast')) {
    /**
     * Send an event to every connection.
     *
     * @param string $event the event name
     * @param mixed  $data  any JSON-encodable value
     *
     * @return int|false connections the event was queued to, or false (logged)
     *
     * @throws void never: failures are logged and return false
     */
    function herald_broadcast(string $event, mixed $data = null): int|false
    {
        try {
            return herald_client()->broadcast($event, $data);
        } catch (\Throwable $e) {
            return herald_log_failure('publish', $e);
        }
    }
}

if (!function_exists('herald_token')) {
    /**
     * Sign a connection token for a user.
     *
     * @param string|int           $userId the user id
     * @param int                  $ttl    seconds until it expires
     * @param array<string, mixed> $claims extra claims (not "sub", nor "channel": that is a
     *                                     channel token, herald_channel_token())
     *
     * @return string the token
     *
     * @throws Herald\Exception when no secret is configured or an argument is invalid
     */
    function herald_token(string|int $userId, int $ttl = 3600, array $claims = []): string
    {
        return herald_client()->token($userId, $ttl, $claims);
    }
}

if (!function_exists('herald_publish_channel')) {
    /**
     * Send an event to every connection subscribed to a channel.
     *
     * @param string $channel the channel name: 1 to 128 bytes of A-Z a-z 0-9 _ - . : @ / = +
     * @param string $event   the event name
     * @param mixed  $data    any JSON-encodable value
     *
     * @return int|false connections the event was queued to, or false (logged)
     *
     * @throws void never: failures are logged and return false
     */
    function herald_publish_channel(string $channel, string $event, mixed $data = null): int|false
    {
        try {
            return herald_client()->publishChannel($channel, $event, $data);
        } catch (\Throwable $e) {
            return herald_log_failure('publish', $e);
        }
    }
}

if (!function_exists('herald_presence')) {
    /**
     * List the members of a presence channel.
     *
     * @param string $channel a channel matching presence_channels in Herald's config
     *
     * @return list<array{user: string, info: mixed, connections: int}>|false one entry per
     *         user (info null when the token had none), or false (logged)
     *
     * @throws void never: failures are logged and return false
     */
    function herald_presence(string $channel): array|false
    {
        try {
            return herald_client()->presence($channel);
        } catch (\Throwable $e) {
            return herald_log_failure('presence', $e);
        }
    }
}

if (!function_exists('herald_online')) {
    /**
     * Ask whether a user has an open connection.
     *
     * @param string|int $userId the user id
     *
     * @return array{online: bool, connections: int}|false or false (logged)
     *
     * @throws void never: failures are logged and return false
     */
    function herald_online(string|int $userId): array|false
    {
        try {
            return herald_client()->online($userId);
        } catch (\Throwable $e) {
            return herald_log_failure('presence', $e);
        }
    }
}

if (!function_exists('herald_channel_token')) {
    /**
     * Sign a channel token: lets the user's connections subscribe to one channel.
     *
     * @param string|int $userId  the user id (the connection's user)
     * @param string     $channel the channel name (not a pattern)
     * @param int        $ttl     seconds until it expires
     *
     * @return string the token, for {"op":"subscribe","channel":...,"token":...}
     *
     * @throws Herald\Exception when no secret is configured or an argument is invalid
     */
    function herald_channel_token(string|int $userId, string $channel, int $ttl = 3600): string
    {
        return herald_client()->channelToken($userId, $channel, $ttl);
    }
}

if (!function_exists('herald_rpc_request')) {
    /**
     * In the RPC script: check that the request comes from Herald and return it.
     * Reads php://input and $_SERVER['HERALD_SIGNATURE']; checks the signature
     * with the configured secret and the time (within 60 s).
     *
     * @return array<string, mixed>|null the decoded body (type, method, user, connection,
     *         data, time...), or null after answering 403 {"code":"forbidden",...} (logged)
     *
     * @throws void never
     */
    function herald_rpc_request(): ?array
    {
        try {
            $body = file_get_contents('php://input');
            $signature = $_SERVER['HERALD_SIGNATURE'] ?? null;
            return herald_client()->rpcRequest(
                is_string($body) ? $body : '',
                is_string($signature) ? $signature : null
            );
        } catch (\Throwable $e) {
            herald_log_failure('rpc request', $e);
            try {
                Rpc::error('forbidden', 'not a request from Herald', 403);
            } catch (\Throwable) {
                /* output had already started: the failure above is logged, nothing more to do */
            }
            return null;
        }
    }
}

if (!function_exists('herald_rpc_reply')) {
    /**
     * In the RPC script: answer with data (status 200, application/json).
     *
     * @param mixed $data any JSON-encodable value
     *
     * @return void
     *
     * @throws void never: a failure is logged and answered 500 when still possible
     */
    function herald_rpc_reply(mixed $data): void
    {
        try {
            Rpc::reply($data);
        } catch (\Throwable $e) {
            herald_rpc_failure($e);
        }
    }
}

if (!function_exists('herald_rpc_error')) {
    /**
     * In the RPC script: answer with an error the browser sees as its code and message.
     *
     * @param string $code    1 to 64 bytes of a-z 0-9 _ . - (such as "not_found")
     * @param string $message for people
     * @param int    $status  the HTTP status, 400 to 599
     *
     * @return void
     *
     * @throws void never: a failure is logged and answered 500 when still possible
     */
    function herald_rpc_error(string $code, string $message, int $status = 400): void
    {
        try {
            Rpc::error($code, $message, $status);
        } catch (\Throwable $e) {
            herald_rpc_failure($e);
        }
    }
}

if (!function_exists('herald_client')) {
    /**
     * The shared client, built on first use. Given options, build a new one from
     * them (or take the one given as "client") and keep it only if they are valid.
     *
     * @internal
     *
     * @param array<string, mixed>|null $options
     *
     * @return ClientInterface
     *
     * @throws Herald\Exception when the options are invalid
     */
    function herald_client(?array $options = null): ClientInterface
    {
        static $client = null;

        if ($options !== null && array_key_exists('client', $options)) {
            if (count($options) !== 1 || !$options['client'] instanceof ClientInterface) {
                throw new Herald\Exception('option "client" must be a Herald\\ClientInterface, given alone');
            }
            return $client = $options['client'];
        }
        if ($options !== null) {
            return $client = new Client($options);
        }
        return $client ??= new Client();
    }
}

if (!function_exists('herald_rpc_failure')) {
    /**
     * Log an answer that could not be given and answer 500, which Herald turns
     * into rpc_failed, unless output has already started.
     *
     * @internal
     *
     * @param \Throwable $e what went wrong
     *
     * @return void
     */
    function herald_rpc_failure(\Throwable $e): void
    {
        herald_log_failure('rpc answer', $e);
        if (!headers_sent()) {
            http_response_code(500);
        }
    }
}

if (!function_exists('herald_log_failure')) {
    /**
     * Write the one error-log line for a failure and return false.
     *
     * @internal
     *
     * @param string     $what "publish", "presence", "configure", "rpc request" or "rpc answer"
     * @param \Throwable $e    what went wrong
     *
     * @return false
     */
    function herald_log_failure(string $what, \Throwable $e): bool
    {
        $reason = $e instanceof ApiException ? "HTTP {$e->getCode()}: {$e->getMessage()}" : $e->getMessage();
        $reason = trim((string) preg_replace('/\s+/', ' ', $reason));
        error_log("herald: $what failed: " . ($reason !== '' ? $reason : get_class($e)));
        return false;
    }
}
