<?php

/**
 * FastCgi.php -- the FastCGI records Herald's API speaks, as pure functions.
 *
 * Encodes a request (BEGIN_REQUEST, the PARAMS stream, the STDIN stream)
 * and parses the CGI response carried on STDOUT ("Status:" header, default
 * 200). No I/O here: FastCgiTransport owns the socket. Every record is
 * padded to a multiple of 8 bytes and streams longer than 65535 bytes are
 * split across records.
 *
 *   record: version(1)=1 type(1) requestId(2) contentLength(2) paddingLength(1)
 *           reserved(1) content[contentLength] padding[paddingLength]
 *   name-value pair: nameLength valueLength name value, each length in 1 byte
 *           (< 128) or 4 bytes with the top bit set
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
    public const KEEP_CONN = 1;
    public const REQUEST_ID = 1;
    public const MAX_CONTENT = 65535;

    /** How Herald's 200 answers begin; the Content-Length and a blank line follow. */
    private const HEAD_200 = "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: ";
    private const HEAD_200_LENGTH = 64;

    /** How many encoded parameter heads request() keeps. */
    private const HEAD_CACHE = 32;

    /** @var array<string, string> encoded parameters but CONTENT_LENGTH, by "METHOD URI" */
    private static array $heads = [];

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
     * @param array<string, string> $params    CGI parameters
     * @param string                $body      the request body
     * @param int                   $requestId 1 to 65535
     * @param bool                  $keepConn  ask Herald to keep the connection open after
     *                                         the answer (FCGI_KEEP_CONN)
     *
     * @return string the bytes to write
     */
    public static function encodeRequest(
        array $params,
        string $body,
        int $requestId = self::REQUEST_ID,
        bool $keepConn = false
    ): string {
        $pairs = '';
        foreach ($params as $name => $value) {
            $pairs .= self::encodeNameValue((string) $name, $value);
        }
        $begin = pack('nCx5', self::RESPONDER, $keepConn ? self::KEEP_CONN : 0);
        return self::encodeRecord(self::BEGIN_REQUEST, $begin, $requestId)
            . self::encodeStream(self::PARAMS, $pairs, $requestId)
            . self::encodeStream(self::STDIN, $body, $requestId);
    }

    /**
     * Encode a whole request for a method, URI and body: the bytes
     * encodeRequest(params($method, $uri, $body), $body, $requestId, $keepConn)
     * gives, built with one pack() per request. The parameters that do not
     * depend on the body are encoded once per method and URI and cached (up to
     * HEAD_CACHE of them: a URI with a query varies, so the cache is emptied
     * when full).
     *
     * @param string $method    the request method
     * @param string $uri       the path, with an optional "?query"
     * @param string $body      the request body
     * @param int    $requestId 1 to 65535
     * @param bool   $keepConn  FCGI_KEEP_CONN
     *
     * @return string the bytes to write
     */
    public static function request(
        string $method,
        string $uri,
        string $body,
        int $requestId = self::REQUEST_ID,
        bool $keepConn = false
    ): string {
        $key = $method . ' ' . $uri;
        $head = self::$heads[$key] ?? null;
        if ($head === null) {
            if (count(self::$heads) >= self::HEAD_CACHE) {
                self::$heads = [];
            }
            $head = '';
            foreach (self::params($method, $uri, '') as $name => $value) {
                if ($name !== 'CONTENT_LENGTH') {
                    $head .= self::encodeNameValue($name, $value);
                }
            }
            self::$heads[$key] = $head;
        }
        $length = strlen($body);
        $pairs = $head . "\x0e" . chr(strlen((string) $length)) . 'CONTENT_LENGTH' . $length;
        $pairsLength = strlen($pairs);
        if ($length > self::MAX_CONTENT || $pairsLength > self::MAX_CONTENT || $requestId < 1 || $requestId > 0xffff) {
            return self::encodeRequest(self::params($method, $uri, $body), $body, $requestId, $keepConn);
        }
        $pairsPad = (8 - $pairsLength % 8) % 8;
        $bodyPad = (8 - $length % 8) % 8;
        /* BEGIN_REQUEST (8 + 8 bytes), then the PARAMS record's header; the pairs and
         * their padding; the empty PARAMS record and the STDIN record's header; the body
         * and its padding; the empty STDIN record. */
        $out = pack(
            'CCnnxxnCx5CCnnCx',
            self::VERSION,
            self::BEGIN_REQUEST,
            $requestId,
            8,
            self::RESPONDER,
            $keepConn ? self::KEEP_CONN : 0,
            self::VERSION,
            self::PARAMS,
            $requestId,
            $pairsLength,
            $pairsPad
        ) . $pairs . str_repeat("\0", $pairsPad)
            . pack('CCnx4', self::VERSION, self::PARAMS, $requestId);
        if ($length > 0) {
            $out .= pack('CCnnCx', self::VERSION, self::STDIN, $requestId, $length, $bodyPad)
                . $body . str_repeat("\0", $bodyPad);
        }
        return $out . pack('CCnx4', self::VERSION, self::STDIN, $requestId);
    }

    /**
     * Encode a stream as records of at most 65535 bytes, then an empty record.
     *
     * @param int    $type      PARAMS or STDIN
     * @param string $data      the whole stream
     * @param int    $requestId the request the stream belongs to
     *
     * @return string
     */
    public static function encodeStream(int $type, string $data, int $requestId = self::REQUEST_ID): string
    {
        $out = '';
        foreach (str_split($data, self::MAX_CONTENT) as $chunk) {
            if ($chunk !== '') {
                $out .= self::encodeRecord($type, $chunk, $requestId);
            }
        }
        return $out . self::encodeRecord($type, '', $requestId);
    }

    /**
     * Encode one record, padded to a multiple of 8 bytes.
     *
     * @param int    $type      record type
     * @param string $content   at most 65535 bytes
     * @param int    $requestId request id (1 to 65535; 0 for management records)
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
        if ($requestId < 0 || $requestId > 0xffff) {
            throw new Exception("FastCGI request id $requestId is not 0 to 65535");
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
     * @throws ProtocolException when the header block is missing or malformed
     */
    public static function parseResponse(string $stdout): array
    {
        /* Herald's usual head, taken apart without regular expressions: the same
         * result as below, for a fraction of the cost of every publish. */
        if (strncmp($stdout, self::HEAD_200, self::HEAD_200_LENGTH) === 0) {
            $end = strpos($stdout, "\r\n\r\n", self::HEAD_200_LENGTH);
            $digits = $end === false ? 0 : $end - self::HEAD_200_LENGTH;
            if ($digits > 0 && $digits <= 10 && strspn($stdout, '0123456789', self::HEAD_200_LENGTH) === $digits) {
                return ['status' => 200, 'headers' => [
                    'status' => '200 OK',
                    'content-type' => 'application/json',
                    'content-length' => substr($stdout, self::HEAD_200_LENGTH, $digits),
                ], 'body' => (string) substr($stdout, $end + 4)];
            }
        }
        if (!preg_match('/\r?\n\r?\n/', $stdout, $m, PREG_OFFSET_CAPTURE)) {
            throw new ProtocolException('malformed answer from herald: no end of headers');
        }
        $head = substr($stdout, 0, $m[0][1]);
        $body = substr($stdout, $m[0][1] + strlen($m[0][0]));
        $headers = [];
        foreach ($head === '' ? [] : preg_split('/\r?\n/', $head) as $line) {
            if (!preg_match('/^([!#$%&\'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/D', $line, $h)) {
                throw new ProtocolException('malformed answer from herald: bad header line');
            }
            $headers[strtolower($h[1])] = $h[2];
        }
        $status = 200;
        if (isset($headers['status'])) {
            if (!preg_match('/^([1-5][0-9][0-9])(?: |$)/', $headers['status'], $s)) {
                throw new ProtocolException('malformed answer from herald: bad Status header');
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
}
