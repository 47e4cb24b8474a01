<?php

/**
 * Exception.php -- the one base class of every error the Herald client raises.
 *
 * Catch Herald\Exception to handle them all. Input validation raises it
 * directly; three subclasses narrow it down: ApiException (Herald answered
 * with an error status, which is the code), ConnectionException (the
 * socket, a timeout, a connection closed early) and ProtocolException (an
 * answer that makes no sense: bad FastCGI records, a body that is not the
 * JSON expected).
 */

declare(strict_types=1);

namespace Herald;

class Exception extends \RuntimeException
{
}
