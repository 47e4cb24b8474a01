<?php

/**
 * herald.php -- Herald as plain functions, for pages that must never break.
 *
 *   require_once '/path/to/php-client/herald.php';   // or Composer's autoload
 *   herald_configure(['secret' => '...']);            // optional: env HERALD_SOCKET, HERALD_SECRET
 *   herald_publish(42, 'order.shipped', ['id' => 7]); // int, or false
 *   $token = herald_token(42);
 *
 * herald_publish() and herald_broadcast() never throw: on any failure they
 * return false and write exactly one line to the PHP error log,
 * "herald: publish failed: <reason>". herald_configure() never throws either
 * ("herald: configure failed: <reason>", configuration left as it was).
 * herald_token() is the exception: signing is local and cannot fail at run
 * time, so a missing secret or an invalid argument is a programming error
 * and throws Herald\Exception.
 *
 * Works whether it is loaded by Composer ("files" autoload) or simply
 * required (use require_once): without an autoloader that knows Herald\ it
 * requires the classes itself.
 */

declare(strict_types=1);

use Herald\ApiException;
use Herald\Client;

if (!class_exists(Client::class)) {
    require_once __DIR__ . '/src/Exception.php';
    require_once __DIR__ . '/src/ApiException.php';
    require_once __DIR__ . '/src/ConnectionException.php';
    require_once __DIR__ . '/src/FastCgi.php';
    require_once __DIR__ . '/src/Token.php';
    require_once __DIR__ . '/src/Client.php';
}

/**
 * Configure the shared client. Options as for Herald\Client: socket, secret,
 * connect_timeout, timeout. Each call replaces the previous configuration;
 * options left out fall back to the environment and the defaults.
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

/**
 * Sign a connection token for a user.
 *
 * @param string|int           $userId the user id
 * @param int                  $ttl    seconds until it expires
 * @param array<string, mixed> $claims extra claims (not "sub")
 *
 * @return string the token
 *
 * @throws Herald\Exception when no secret is configured or an argument is invalid
 */
function herald_token(string|int $userId, int $ttl = 3600, array $claims = []): string
{
    return herald_client()->token($userId, $ttl, $claims);
}

/**
 * The shared client, built on first use. Given options, build a new one from
 * them and keep it (and them) only if they are valid.
 *
 * @internal
 *
 * @param array<string, mixed>|null $options
 *
 * @return Client
 *
 * @throws Herald\Exception when the options are invalid
 */
function herald_client(?array $options = null): Client
{
    static $config = [];
    static $client = null;

    if ($options !== null) {
        $client = new Client($options);
        $config = $options;
    }
    return $client ??= new Client($config);
}

/**
 * Write the one error-log line for a failure and return false.
 *
 * @internal
 *
 * @param string     $what "publish" or "configure"
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
