<?php

/**
 * ClientInterface.php -- everything a Herald\Client does, as a type.
 *
 * Code that publishes should ask for a ClientInterface, so its tests can
 * hand it a fake that records the calls instead of a Client talking to a
 * daemon. Client is the one implementation here. Errors follow Client's
 * rules: Exception for bad input, ApiException (error status),
 * ConnectionException (socket, timeout) and ProtocolException (an answer
 * that makes no sense), all Herald\Exception.
 */

declare(strict_types=1);

namespace Herald;

interface ClientInterface
{
    /**
     * Send an event to every connection of one or more users.
     *
     * @param string|int|array<string|int> $users a user id or a non-empty list of them
     * @param string                       $event the event name, 1 to 200 bytes
     * @param mixed                        $data  any JSON-encodable value
     *
     * @return int the number of connections the event was queued to
     *
     * @throws Exception on invalid input or a failed call
     */
    public function publish(string|int|array $users, string $event, mixed $data = null): int;

    /**
     * Send an event to every connection.
     *
     * @param string $event the event name, 1 to 200 bytes
     * @param mixed  $data  any JSON-encodable value
     *
     * @return int the number of connections the event was queued to
     *
     * @throws Exception on invalid input or a failed call
     */
    public function broadcast(string $event, mixed $data = null): int;

    /**
     * Send an event to every connection subscribed to a channel.
     *
     * @param string $channel the channel name
     * @param string $event   the event name, 1 to 200 bytes
     * @param mixed  $data    any JSON-encodable value
     *
     * @return int the number of connections the event was queued to
     *
     * @throws Exception on invalid input or a failed call
     */
    public function publishChannel(string $channel, string $event, mixed $data = null): int;

    /**
     * Send several events in one request.
     *
     * @param array<array<string, mixed>> $messages a list of messages, each with "event",
     *        "data" and one of "users", "broadcast" => true or "channel"
     *
     * @return list<int> connections reached, one count per message, in order
     *
     * @throws Exception on invalid input or a failed call
     */
    public function publishBatch(array $messages): array;

    /**
     * Sign a connection token for a user.
     *
     * @param string|int           $userId the user id
     * @param int                  $ttl    seconds until it expires
     * @param array<string, mixed> $claims extra claims
     *
     * @return string the token
     *
     * @throws Exception when no secret is configured or an argument is invalid
     */
    public function token(string|int $userId, int $ttl = 3600, array $claims = []): string;

    /**
     * Sign a channel token: it lets this user's connections subscribe to one channel.
     *
     * @param string|int $userId  the user id
     * @param string     $channel the channel name (not a pattern)
     * @param int        $ttl     seconds until it expires
     *
     * @return string the token
     *
     * @throws Exception when no secret is configured or an argument is invalid
     */
    public function channelToken(string|int $userId, string $channel, int $ttl = 3600): string;

    /**
     * List the members of a presence channel.
     *
     * @param string $channel a channel matching presence_channels in Herald's config
     *
     * @return list<array{user: string, info: mixed, connections: int}> one entry per user
     *
     * @throws Exception on an invalid name or a failed call
     */
    public function presence(string $channel): array;

    /**
     * Ask whether a user has at least one open connection.
     *
     * @param string|int $userId the user id
     *
     * @return array{online: bool, connections: int}
     *
     * @throws Exception on an invalid user id or a failed call
     */
    public function online(string|int $userId): array;

    /**
     * Check an RPC or hook request from Herald and return its body.
     *
     * @param string      $body      the raw request body
     * @param string|null $signature HERALD_SIGNATURE, or null when absent
     * @param int|null    $now       the current time (default: time())
     *
     * @return array<string, mixed> the decoded body
     *
     * @throws Exception when no secret is configured or the request is not Herald's
     */
    public function rpcRequest(string $body, ?string $signature, ?int $now = null): array;

    /**
     * Ask whether Herald is up.
     *
     * @return array<string, mixed> {"ok": true, "uptime": seconds, "workers": N}
     *
     * @throws Exception when the call fails
     */
    public function health(): array;

    /**
     * Fetch Herald's counters.
     *
     * @return array<string, mixed> connections, users, published, delivered, refusals...
     *
     * @throws Exception when the call fails
     */
    public function stats(): array;
}
