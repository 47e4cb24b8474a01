<?php

/**
 * FastCgiTransport.php -- requests to Herald's API over its Unix socket.
 *
 * By default every request opens a connection, sends one FastCGI request
 * (id 1, without FCGI_KEEP_CONN), reads the answer and closes. With
 * persistent, a process keeps one connection per socket path across calls
 * and, under php-fpm, across the pages its worker serves:
 * stream_socket_client() with STREAM_CLIENT_PERSISTENT (PHP keys it by the
 * address) and FCGI_KEEP_CONN, so Herald keeps it open after each answer.
 *
 * A kept connection is reused only when its last request ended cleanly.
 * PHP keeps nothing of a page's variables, so the connection carries its
 * own state: its chunk size (stream_set_chunk_size() sets it and returns the
 * one before), which persists with the stream. It is STATE_BUSY from before
 * the first byte of a request is written until its whole answer is read,
 * and STATE_IDLE only after an answer that ended exactly at END_REQUEST.
 * Whatever stops a request halfway (a timeout, an exception, a fatal error
 * or max_execution_time, which skip every finally block) leaves it BUSY, so
 * the next use closes it and connects afresh. A shutdown function closes a
 * connection still BUSY when the page ends, so Herald does not wait on it.
 * On reuse an IDLE connection must also have nothing to read (no byte, no
 * EOF: Herald restarted or closed it), which one select() tells; bytes read
 * past END_REQUEST drop it at once. Request ids vary, and an answer for
 * another id is a ProtocolException that drops the connection. Within a
 * page the connection is kept in a static too, which spares the second
 * liveness check (a recv) stream_socket_client() makes on a kept stream.
 *
 * A request is acted on only once its last byte reaches Herald. So when a
 * write to a reused connection fails (Herald closed it after the checks
 * above), nothing was processed and the request is sent once more on a
 * fresh connection. Nothing else is ever resent: once the request is whole,
 * a failure is a ConnectionException and the publish may have happened.
 *
 * Timeouts: connecting may take connectTimeout seconds; once connected, the
 * whole exchange (writing the request, reading the answer) must end within
 * timeout seconds, so every read and write waits at most for what is left.
 */

declare(strict_types=1);

namespace Herald;

final class FastCgiTransport implements TransportInterface
{
    /** Answers larger than this are refused rather than buffered. */
    private const MAX_RESPONSE = 8 * 1024 * 1024;

    /** The most one read asks for; PHP reads a socket a chunk (8 KiB) at a time anyway. */
    private const READ_SIZE = 65536;

    /** A kept connection's state, as its chunk size; a fresh stream has PHP's 8192. */
    private const STATE_BUSY = 8191;
    private const STATE_IDLE = 8190;

    /** @var array<string, resource> kept connections mid-request in this process, by address */
    private static array $busy = [];

    /** Whether this request (page) has registered the shutdown function. */
    private static bool $hooked = false;

    /**
     * @var array<string, resource> the kept connection of each address this page used:
     * reusing it skips stream_socket_client(), whose own liveness check (a recv)
     * would come on top of pending()'s. Empty again on each php-fpm page.
     */
    private static array $kept = [];

    /** The last request id used on a kept connection; 0 before the first. */
    private static int $lastId = 0;

    /** @var (callable(string, float): resource)|null */
    private $connector;

    private string $address;

    /**
     * @param string        $socket         path of the API socket, or a "unix://..." address
     * @param float         $connectTimeout seconds to wait for the connection
     * @param float         $timeout        seconds the whole exchange may take once connected
     * @param callable|null $connector      fn(string $socket, float $connectTimeout): resource,
     *                                      replacing the Unix socket (tests); not with $persistent
     * @param bool          $persistent     keep one connection per socket path across calls
     *                                      and pages (see the class comment)
     *
     * @throws Exception when a connector is given with $persistent
     */
    public function __construct(
        private string $socket,
        private float $connectTimeout = 1.0,
        private float $timeout = 3.0,
        ?callable $connector = null,
        private bool $persistent = false
    ) {
        if ($connector !== null && $persistent) {
            throw new Exception('a connector cannot be persistent: persistent needs the Unix socket');
        }
        $this->connector = $connector;
        $this->address = str_contains($socket, '://') ? $socket : 'unix://' . $socket;
    }

    /**
     * Send one request and wait for its answer.
     *
     * @param string $method "GET" or "POST"
     * @param string $uri    the path, with an optional "?query"
     * @param string $body   the request body (sent on STDIN)
     *
     * @return array{status: int, headers: array<string, string>, body: string}
     *
     * @throws ConnectionException when connecting, writing or reading fails or times out
     * @throws ProtocolException   when the answer is not a well-formed FastCGI answer
     */
    public function request(string $method, string $uri, string $body = ''): array
    {
        if ($this->persistent && !isset(self::$busy[$this->address])) {
            return $this->requestKept($method, $uri, $body);
        }
        /* One connection per request; also a call made while the kept connection is
         * mid-request (from an error handler or a destructor): it must not touch it. */
        $stream = $this->connect(false);
        try {
            $deadline = microtime(true) + $this->timeout;
            if (!$this->write($stream, FastCgi::request($method, $uri, $body), $deadline)) {
                throw new ConnectionException('writing to herald failed');
            }
            return $this->readAnswer($stream, FastCgi::REQUEST_ID, $deadline)[0];
        } finally {
            fclose($stream);
        }
    }

    /**
     * Open a connection to a Unix socket.
     *
     * @param string $socket     a path, or an address with a scheme ("unix://...")
     * @param float  $timeout    seconds to wait for the connection
     * @param bool   $persistent a persistent stream (STREAM_CLIENT_PERSISTENT), which PHP
     *                           hands back again for the same address while it lives
     *
     * @return resource
     *
     * @throws ConnectionException when the socket cannot be opened
     */
    public static function connectUnix(string $socket, float $timeout, bool $persistent = false)
    {
        $address = str_contains($socket, '://') ? $socket : 'unix://' . $socket;
        $flags = STREAM_CLIENT_CONNECT | ($persistent ? STREAM_CLIENT_PERSISTENT : 0);
        $errno = 0;
        $errstr = '';
        $stream = @stream_socket_client($address, $errno, $errstr, $timeout, $flags);
        if ($stream === false) {
            throw new ConnectionException("cannot connect to $address: " . ($errstr ?: 'unknown error'));
        }
        return $stream;
    }

    /**
     * One request on the kept connection, retried once on a fresh one when a
     * reused connection fails before the request's last byte is written.
     *
     * @return array{status: int, headers: array<string, string>, body: string}
     */
    private function requestKept(string $method, string $uri, string $body): array
    {
        /* A page's first id comes from the clock: random_int() would cost a getrandom()
         * call a page, and the ids need only vary, not be secret. */
        self::$lastId = self::$lastId === 0 ? hrtime(true) % 0xffff + 1 : self::$lastId % 0xffff + 1;
        $id = self::$lastId;
        $bytes = FastCgi::request($method, $uri, $body, $id, true);
        [$stream, $reused] = $this->take();
        try {
            $deadline = microtime(true) + $this->timeout;
            $sent = $this->write($stream, $bytes, $deadline);
            if (!$sent && $reused) {
                $this->drop($stream);
                [$stream] = $this->take();
                $sent = $this->write($stream, $bytes, $deadline);
            }
            if (!$sent) {
                throw new ConnectionException('writing to herald failed');
            }
            [$answer, $leftover] = $this->readAnswer($stream, $id, $deadline);
        } catch (\Throwable $e) {
            $this->drop($stream);
            throw $e;
        }
        /* Bytes read past END_REQUEST: the answer stands, the connection does not. Bytes
         * that come later are found by the check before the next reuse (take()). PHP's
         * buffer is empty here: every read took all it held. */
        if ($leftover) {
            $this->drop($stream);
        } else {
            stream_set_chunk_size($stream, self::STATE_IDLE);
            unset(self::$busy[$this->address]);
        }
        return $answer;
    }

    /**
     * The kept connection, marked BUSY: the one from before when it ended
     * cleanly and is quiet, else a fresh one.
     *
     * @return array{0: resource, 1: bool} the stream, and whether it was reused
     */
    private function take(): array
    {
        for ($attempt = 0; $attempt < 2; $attempt++) {
            $stream = self::$kept[$this->address] ?? null;
            if ($stream === null || !is_resource($stream)) {
                $stream = $this->connect(true);
                self::$kept[$this->address] = $stream;
            }
            $state = stream_set_chunk_size($stream, self::STATE_BUSY);
            self::$busy[$this->address] = $stream;
            if (!self::$hooked) {
                self::$hooked = true;
                register_shutdown_function(static function (): void {
                    self::dropBusy();
                });
            }
            if ($state !== self::STATE_IDLE && $state !== self::STATE_BUSY) {
                return [$stream, false];
            }
            if ($state === self::STATE_IDLE && !self::pending($stream)) {
                return [$stream, true];
            }
            $this->drop($stream); // left mid-request, or holding bytes nobody asked for
        }
        throw new ConnectionException('no fresh connection to herald: PHP kept handing back a used one');
    }

    /** Close every kept connection still mid-request: the page ended before its answer. */
    private static function dropBusy(): void
    {
        foreach (self::$busy as $address => $stream) {
            unset(self::$kept[$address]);
            if (is_resource($stream)) {
                fclose($stream);
            }
        }
        self::$busy = [];
    }

    /**
     * Close a kept connection for good (PHP forgets the persistent stream).
     *
     * @param resource $stream
     */
    private function drop($stream): void
    {
        unset(self::$busy[$this->address], self::$kept[$this->address]);
        if (is_resource($stream)) {
            fclose($stream);
        }
    }

    /**
     * Whether a connection has anything to read: buffered bytes, bytes in the
     * socket, or EOF. An idle kept connection must have none of these.
     *
     * @param resource $stream
     */
    private static function pending($stream): bool
    {
        /* stream_select() counts bytes in PHP's buffer as readable without a system call */
        $read = [$stream];
        $write = $except = null;
        return @stream_select($read, $write, $except, 0) !== 0;
    }

    /**
     * A connection from the connector, or to the Unix socket.
     *
     * @return resource
     */
    private function connect(bool $persistent)
    {
        if ($this->connector === null) {
            return self::connectUnix($this->address, $this->connectTimeout, $persistent);
        }
        $stream = ($this->connector)($this->socket, $this->connectTimeout);
        if (!is_resource($stream)) {
            throw new ConnectionException('the connector did not return a stream');
        }
        return $stream;
    }

    /**
     * Read records until END_REQUEST for our request and parse the CGI answer.
     * Reads take whatever has arrived (the whole answer, usually, in one read).
     *
     * @param resource $stream
     *
     * @return array{0: array{status: int, headers: array<string, string>, body: string}, 1: bool}
     *         the answer, and whether bytes came after END_REQUEST
     */
    private function readAnswer($stream, int $id, float $deadline): array
    {
        $out = ['', ''];
        $buffer = '';
        $at = 0;
        while (true) {
            if (strlen($buffer) - $at < 8) {
                $buffer = substr($buffer, $at) . $this->readSome($stream, $deadline);
                $at = 0;
                continue;
            }
            /* the header by ord(): unpack() would build an array for each record */
            if (ord($buffer[$at]) !== FastCgi::VERSION) {
                throw new ProtocolException('malformed answer from herald: not FastCGI');
            }
            $type = ord($buffer[$at + 1]);
            $rid = ord($buffer[$at + 2]) << 8 | ord($buffer[$at + 3]);
            $length = ord($buffer[$at + 4]) << 8 | ord($buffer[$at + 5]);
            if ($rid !== $id) {
                throw new ProtocolException("malformed answer from herald: a record for request $rid, not $id");
            }
            if ($type !== FastCgi::END_REQUEST && $type !== FastCgi::STDOUT && $type !== FastCgi::STDERR) {
                throw new ProtocolException("malformed answer from herald: a record of type $type");
            }
            $next = $at + 8 + $length + ord($buffer[$at + 6]);
            if (strlen($buffer) < $next) {
                $buffer = substr($buffer, $at) . $this->readSome($stream, $deadline);
                $at = 0;
                continue;
            }
            $content = substr($buffer, $at + 8, $length);
            $at = $next;
            if ($type === FastCgi::END_REQUEST) {
                return [self::ended($content, $out[0], $out[1]), $at !== strlen($buffer)];
            }
            $out[$type === FastCgi::STDOUT ? 0 : 1] .= $content;
            if (strlen($out[0]) + strlen($out[1]) > self::MAX_RESPONSE) {
                throw new ProtocolException('answer from herald is too large');
            }
        }
    }

    /**
     * The answer once END_REQUEST came: refused, an error on STDERR, or the CGI response.
     *
     * @return array{status: int, headers: array<string, string>, body: string}
     */
    private static function ended(string $end, string $stdout, string $stderr): array
    {
        $status = strlen($end) > 4 ? ord($end[4]) : 0; // after the 4 bytes of appStatus
        if ($status !== 0) {
            throw new ConnectionException("herald refused the request (FastCGI status $status)");
        }
        if ($stdout === '' && $stderr !== '') {
            throw new ProtocolException('herald reported: ' . trim(substr($stderr, 0, 500)));
        }
        return FastCgi::parseResponse($stdout);
    }

    /**
     * The bytes that have arrived, waiting for some until the deadline.
     *
     * @param resource $stream
     */
    private function readSome($stream, float $deadline): string
    {
        $this->arm($stream, $deadline);
        $chunk = @fread($stream, self::READ_SIZE);
        if ($chunk === false || $chunk === '') {
            $this->checkTimeout($stream);
            if (feof($stream)) {
                throw new ConnectionException('herald closed the connection before the answer ended');
            }
            throw new ConnectionException('reading from herald failed');
        }
        return $chunk;
    }

    /**
     * Write all of $data; false when the socket failed (nothing after that reached Herald).
     *
     * @param resource $stream
     *
     * @throws ConnectionException when the time runs out
     */
    private function write($stream, string $data, float $deadline): bool
    {
        while ($data !== '') {
            $this->arm($stream, $deadline);
            $written = @fwrite($stream, $data);
            if ($written === false || $written === 0) {
                $this->checkTimeout($stream);
                return false;
            }
            $data = substr($data, $written);
        }
        return true;
    }

    /**
     * Let the next read or write wait only for the time left.
     *
     * @param resource $stream
     */
    private function arm($stream, float $deadline): void
    {
        $left = $deadline - microtime(true);
        if ($left <= 0) {
            throw $this->timedOut();
        }
        $seconds = (int) floor($left);
        stream_set_timeout($stream, $seconds, max(1, (int) (($left - $seconds) * 1e6)));
    }

    /**
     * @param resource $stream
     */
    private function checkTimeout($stream): void
    {
        if (stream_get_meta_data($stream)['timed_out']) {
            throw $this->timedOut();
        }
    }

    private function timedOut(): ConnectionException
    {
        return new ConnectionException(sprintf('herald did not answer within %.3g s', $this->timeout));
    }
}
