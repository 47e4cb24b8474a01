<?php

/**
 * ConnectionException.php -- the conversation with Herald itself failed.
 *
 * Raised when the API socket cannot be opened, a read or write times out,
 * the daemon closes the connection early or sends something that is not a
 * FastCGI response. Nothing is known about whether a publish was delivered.
 */

declare(strict_types=1);

namespace Herald;

final class ConnectionException extends Exception
{
}
