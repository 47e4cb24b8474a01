<?php

/**
 * ProtocolException.php -- Herald answered something that makes no sense.
 *
 * Raised for bad FastCGI records (not version 1, an unknown type, an answer
 * for another request id), an answer over 8 MiB, a CGI head without its
 * blank line or with a bad Status header, an error text on STDERR and
 * nothing on STDOUT, a body that is not JSON or lacks the fields the call
 * expects, or a status and body that disagree (200 without "ok": true, an
 * error status with "ok": true). The connection it came on is never used
 * again. Whether a publish was delivered is unknown, as after a
 * ConnectionException; unlike one, retrying is unlikely to help: something
 * other than Herald may be listening, or the client and daemon disagree.
 */

declare(strict_types=1);

namespace Herald;

final class ProtocolException extends Exception
{
}
