<?php

/**
 * Exception.php -- the one base class of every error the Herald client raises.
 *
 * Catch Herald\Exception to handle them all. Input validation raises it
 * directly; ApiException (the daemon answered with an error status) and
 * ConnectionException (the socket, a timeout or the FastCGI framing failed)
 * narrow it down. API failures carry the HTTP status as their code.
 */

declare(strict_types=1);

namespace Herald;

class Exception extends \RuntimeException
{
}
