<?php

/**
 * ConnectionException.php -- the conversation with Herald itself failed.
 *
 * Raised when the API socket cannot be opened, a write fails, the answer
 * does not arrive within the timeout, the daemon closes the connection
 * before the answer ends, or it refuses the request at the FastCGI level
 * (END_REQUEST with a protocol status: overloaded, and the like). Nothing is
 * known about whether a publish was delivered. An answer that arrives but
 * makes no sense is a ProtocolException instead.
 */

declare(strict_types=1);

namespace Herald;

final class ConnectionException extends Exception
{
}
