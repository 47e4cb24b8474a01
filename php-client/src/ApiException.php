<?php

/**
 * ApiException.php -- Herald answered, but with an error status.
 *
 * The message is the daemon's own "error" text (or the start of the body when
 * the answer was not Herald's JSON) and the code is the HTTP status: 400 for
 * a refused message, 404/405 for a wrong path or method, 413 for a body over
 * api_max_body, 503 when the engine (Redis) is unavailable. The message was
 * not delivered. An error status with {"ok": true} is a ProtocolException.
 */

declare(strict_types=1);

namespace Herald;

final class ApiException extends Exception
{
    /**
     * @param string $error  the daemon's "error" text
     * @param int    $status the HTTP status of the answer
     */
    public function __construct(string $error, int $status)
    {
        parent::__construct($error, $status);
    }

    /**
     * @return int the HTTP status of the answer (the same as getCode())
     */
    public function getStatus(): int
    {
        return $this->getCode();
    }
}
