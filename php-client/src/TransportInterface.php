<?php

/**
 * TransportInterface.php -- how a Client's requests reach Herald's API.
 *
 * FastCgiTransport (FastCGI over the API's Unix socket) is the one Herald
 * speaks; an application may give Client its own ['transport' => ...], to
 * record calls in its tests or to route them elsewhere. A transport sends
 * one request and returns the answer's status, headers and body as they
 * came: deciding what the body means is the Client's work.
 */

declare(strict_types=1);

namespace Herald;

interface TransportInterface
{
    /**
     * Send one request and wait for its answer.
     *
     * @param string $method "GET" or "POST"
     * @param string $uri    the path, with an optional "?query" (already percent-encoded)
     * @param string $body   the request body (JSON for POST, '' for GET)
     *
     * @return array{status: int, headers: array<string, string>, body: string} the HTTP
     *         status (200 unless the answer said otherwise), header names lower-cased,
     *         the body as sent
     *
     * @throws ConnectionException when the request could not be sent or its answer not read
     * @throws ProtocolException   when what came back is not a well-formed answer
     */
    public function request(string $method, string $uri, string $body = ''): array;
}
