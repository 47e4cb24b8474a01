<?php

/**
 * FastCgi.php -- a minimal FastCGI client for Herald's API socket.
 *
 * One FCGI_RESPONDER request (id 1) per connection, without FCGI_KEEP_CONN:
 * BEGIN_REQUEST, the PARAMS stream, the STDIN stream, then records are read
 * until END_REQUEST and STDOUT is parsed as a CGI response ("Status:" header,
 * default 200). Every record is padded to a multiple of 8 bytes and streams
 * longer than 65535 bytes are split across records.
 *
 *   record: version(1)=1 type(1) requestId(2) contentLength(2) paddingLength(1)
 *           reserved(1) content[contentLength] padding[paddingLength]
 *   name-value pair: nameLength valueLength name value, each length in 1 byte
 *           (< 128) or 4 bytes with the top bit set
 *
 * Timeouts: connecting may take connectTimeout seconds; once connected, the
 * whole exchange (writing the request, reading the answer) must end within
 * timeout seconds, so every read and write waits at most for what is left.
 * The transport is a callable returning a connected stream, so tests can
 * inject a socket pair.
 */

declare(strict_types=1);

namespace Herald;

final class FastCgi
{
    public const VERSION = 1;
    public const BEGIN_REQUEST = 1;
    public const END_REQUEST = 3;
    public const PARAMS = 4;
    public const STDIN = 5;
    public const STDOUT = 6;
    public const STDERR = 7;
    public const RESPONDER = 1;
    public const REQUEST_ID = 1;
    public const MAX_CONTENT = 65535;

    /** Answers larger than this are refused rather than buffered. */
    private const MAX_RESPONSE = 8 * 1024 * 1024;

    /** @var callable(string, float): resource */
    private $connector;

    /**
     * @param string        $socket         path of the API socket, or a "unix://..." address
     * @param float         $connectTimeout seconds to wait for the connection
     * @param float         $timeout        seconds the whole exchange may take once connected
     * @param callable|null $connector      fn(string $socket, float $connectTimeout): resource,
     *                                      replacing the Unix socket (tests, other transports)
     */
    public function __construct(
        private string $socket,
        private float $connectTimeout = 1.0,
        private float $timeout = 3.0,
        ?callable $connector = null
    ) {
        $this->connector = $connector ?? [self::class, 'connectUnix'];
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
     */
    public function request(string $method, string $uri, string $body = ''): array
    {
        $stream = ($this->connector)($this->socket, $this->connectTimeout);
        if (!is_resource($stream)) {
            throw new ConnectionException('the connector did not return a stream');
        }
        try {
            $deadline = microtime(true) + $this->timeout;
            $this->write($stream, self::encodeRequest(self::params($method, $uri, $body), $body), $deadline);
            [$stdout, $stderr] = $this->readAnswer($stream, $deadline);
        } finally {
            fclose($stream);
        }
        if ($stdout === '' && $stderr !== '') {
            throw new ConnectionException('herald reported: ' . trim($stderr));
        }
        return self::parseResponse($stdout);
    }

    /**
     * The default transport: a Unix stream socket.
     *
     * @param string $socket  a path, or an address with a scheme ("unix://...")
     * @param float  $timeout seconds to wait for the connection
     *
     * @return resource
     *
     * @throws ConnectionException when the socket cannot be opened
     */
    public static function connectUnix(string $socket, float $timeout)
    {
        $address = str_contains($socket, '://') ? $socket : 'unix://' . $socket;
        $errno = 0;
        $errstr = '';
        $stream = @stream_socket_client($address, $errno, $errstr, $timeout);
        if ($stream === false) {
            throw new ConnectionException("cannot connect to $address: " . ($errstr ?: 'unknown error'));
        }
        return $stream;
    }

    /**
     * The CGI parameters Herald routes on.
     *
     * @param string $method the request method
     * @param string $uri    the path, with an optional "?query"
     * @param string $body   the request body
     *
     * @return array<string, string>
     */
    public static function params(string $method, string $uri, string $body): array
    {
        $parts = explode('?', $uri, 2);
        return [
            'GATEWAY_INTERFACE' => 'CGI/1.1',
            'SERVER_PROTOCOL' => 'HTTP/1.1',
            'REQUEST_METHOD' => $method,
            'SCRIPT_NAME' => $parts[0],
            'REQUEST_URI' => $uri,
            'QUERY_STRING' => $parts[1] ?? '',
            'CONTENT_TYPE' => 'application/json',
            'CONTENT_LENGTH' => (string) strlen($body),
        ];
    }

    /**
     * Encode a whole request: BEGIN_REQUEST, PARAMS and STDIN, each stream
     * ended by an empty record.
     *
     * @param array<string, string> $params CGI parameters
     * @param string                $body   the request body
     *
     * @return string the bytes to write
     */
    public static function encodeRequest(array $params, string $body): string
    {
        $pairs = '';
        foreach ($params as $name => $value) {
            $pairs .= self::encodeNameValue((string) $name, $value);
        }
        $begin = pack('nCx5', self::RESPONDER, 0);
        return self::encodeRecord(self::BEGIN_REQUEST, $begin)
            . self::encodeStream(self::PARAMS, $pairs)
            . self::encodeStream(self::STDIN, $body);
    }

    /**
     * Encode a stream as records of at most 65535 bytes, then an empty record.
     *
     * @param int    $type PARAMS or STDIN
     * @param string $data the whole stream
     *
     * @return string
     */
    public static function encodeStream(int $type, string $data): string
    {
        $out = '';
        foreach (str_split($data, self::MAX_CONTENT) as $chunk) {
            if ($chunk !== '') {
                $out .= self::encodeRecord($type, $chunk);
            }
        }
        return $out . self::encodeRecord($type, '');
    }

    /**
     * Encode one record, padded to a multiple of 8 bytes.
     *
     * @param int    $type      record type
     * @param string $content   at most 65535 bytes
     * @param int    $requestId request id (1; 0 for management records)
     *
     * @return string
     *
     * @throws Exception when the content does not fit one record
     */
    public static function encodeRecord(int $type, string $content, int $requestId = self::REQUEST_ID): string
    {
        $length = strlen($content);
        if ($length > self::MAX_CONTENT) {
            throw new Exception("FastCGI record content of $length bytes is over 65535");
        }
        $padding = (8 - $length % 8) % 8;
        return pack('CCnnCx', self::VERSION, $type, $requestId, $length, $padding)
            . $content . str_repeat("\0", $padding);
    }

    /**
     * Encode one name-value pair: lengths under 128 take 1 byte, others 4.
     *
     * @param string $name  parameter name
     * @param string $value parameter value
     *
     * @return string
     */
    public static function encodeNameValue(string $name, string $value): string
    {
        return self::encodeLength(strlen($name)) . self::encodeLength(strlen($value)) . $name . $value;
    }

    /**
     * Split a CGI response into status, headers (names lower-cased) and body.
     *
     * @param string $stdout everything the application wrote on STDOUT
     *
     * @return array{status: int, headers: array<string, string>, body: string}
     *
     * @throws ConnectionException when the header block is missing or malformed
     */
    public static function parseResponse(string $stdout): array
    {
        if (!preg_match('/\r?\n\r?\n/', $stdout, $m, PREG_OFFSET_CAPTURE)) {
            throw new ConnectionException('malformed answer from herald: no end of headers');
        }
        $head = substr($stdout, 0, $m[0][1]);
        $body = substr($stdout, $m[0][1] + strlen($m[0][0]));
        $headers = [];
        foreach ($head === '' ? [] : preg_split('/\r?\n/', $head) as $line) {
            if (!preg_match('/^([!#$%&\'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/D', $line, $h)) {
                throw new ConnectionException('malformed answer from herald: bad header line');
            }
            $headers[strtolower($h[1])] = $h[2];
        }
        $status = 200;
        if (isset($headers['status'])) {
            if (!preg_match('/^([1-5][0-9][0-9])(?: |$)/', $headers['status'], $s)) {
                throw new ConnectionException('malformed answer from herald: bad Status header');
            }
            $status = (int) $s[1];
        }
        return ['status' => $status, 'headers' => $headers, 'body' => $body];
    }

    /** The 1- or 4-byte length of a name-value pair. */
    private static function encodeLength(int $length): string
    {
        if ($length < 128) {
            return chr($length);
        }
        if ($length > 0x7fffffff) {
            throw new Exception('FastCGI parameter too long');
        }
        return pack('N', $length | 0x80000000);
    }

    /**
     * Read records until END_REQUEST for our request id.
     *
     * @param resource $stream
     *
     * @return array{0: string, 1: string} STDOUT and STDERR
     */
    private function readAnswer($stream, float $deadline): array
    {
        $out = ['', ''];
        while (true) {
            $h = unpack('Cversion/Ctype/nid/nlength/Cpadding', $this->readExactly($stream, 8, $deadline));
            if ($h['version'] !== self::VERSION) {
                throw new ConnectionException('malformed answer from herald: not FastCGI');
            }
            $content = $this->readExactly($stream, $h['length'] + $h['padding'], $deadline);
            $content = substr($content, 0, $h['length']);
            if ($h['id'] !== self::REQUEST_ID) {
                continue; /* another request, or a management record (id 0) */
            }
            if ($h['type'] === self::END_REQUEST) {
                $end = unpack('NappStatus/CprotocolStatus', str_pad($content, 8, "\0"));
                if ($end['protocolStatus'] !== 0) {
                    $status = $end['protocolStatus'];
                    throw new ConnectionException("herald refused the request (FastCGI status $status)");
                }
                return $out;
            }
            if ($h['type'] === self::STDOUT || $h['type'] === self::STDERR) {
                $out[$h['type'] === self::STDOUT ? 0 : 1] .= $content;
                if (strlen($out[0]) + strlen($out[1]) > self::MAX_RESPONSE) {
                    throw new ConnectionException('answer from herald is too large');
                }
            }
        }
    }

    /**
     * @param resource $stream
     */
    private function readExactly($stream, int $length, float $deadline): string
    {
        $data = '';
        while (strlen($data) < $length) {
            $this->arm($stream, $deadline);
            $chunk = @fread($stream, $length - strlen($data));
            if ($chunk === false || $chunk === '') {
                $this->checkTimeout($stream);
                if (feof($stream)) {
                    throw new ConnectionException('herald closed the connection before the answer ended');
                }
                throw new ConnectionException('reading from herald failed');
            }
            $data .= $chunk;
        }
        return $data;
    }

    /**
     * @param resource $stream
     */
    private function write($stream, string $data, float $deadline): void
    {
        while ($data !== '') {
            $this->arm($stream, $deadline);
            $written = @fwrite($stream, $data);
            if ($written === false || $written === 0) {
                $this->checkTimeout($stream);
                throw new ConnectionException('writing to herald failed');
            }
            $data = substr($data, $written);
        }
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
