<?php

/**
 * FakeHerald.php -- a stand-in for Herald's API socket, for unit tests.
 *
 * Its connector hands the client one end of a fresh socket pair per
 * connection; the other end already holds the next canned FastCGI answer
 * (then the write side is shut, so the client sees EOF after it), or stays
 * silent when no answer is queued. After the call, request() decodes what
 * the client sent. The record codec here is written independently of
 * Herald\FastCgi and FastCgiTransport, so the two check each other.
 */

declare(strict_types=1);

namespace Herald\Tests\Support;

final class FakeHerald
{
    /** @var list<array{0: string, 1: bool}> canned answers and whether to hang up after each */
    private array $answers = [];

    /** @var list<resource> our ends of the socket pairs, one per connection */
    private array $peers = [];

    /** @var list<array{0: string, 1: float}> socket and connect timeout of each connection */
    public array $connects = [];

    /**
     * Queue the bytes the next connection receives.
     *
     * @param string $bytes  raw FastCGI records
     * @param bool   $hangUp shut our write side after them (false: stay open and silent)
     */
    public function queue(string $bytes, bool $hangUp = true): void
    {
        $this->answers[] = [$bytes, $hangUp];
    }

    /** Queue a complete answer: STDOUT with a CGI head and body, then END_REQUEST. */
    public function queueAnswer(int $status, string $body, string $contentType = 'application/json'): void
    {
        $stdout = "Status: $status\r\nContent-Type: $contentType\r\n\r\n$body";
        $this->queue(self::record(6, $stdout) . self::record(6, '') . self::endRequest());
    }

    /**
     * The connector to give Herald\FastCgiTransport or Herald\Client.
     *
     * @return \Closure(string, float): resource
     */
    public function connector(): \Closure
    {
        return function (string $socket, float $timeout) {
            $pair = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
            $this->connects[] = [$socket, $timeout];
            $this->peers[] = $pair[1];
            $answer = array_shift($this->answers);
            if ($answer !== null) {
                fwrite($pair[1], $answer[0]);
                if ($answer[1]) {
                    stream_socket_shutdown($pair[1], STREAM_SHUT_WR);
                }
            }
            return $pair[0];
        };
    }

    /**
     * What the client sent on connection $i (default: the last), decoded.
     *
     * @return array{records: list<array{version: int, type: int, id: int, content: string, padding: int}>,
     *               params: array<string, string>, stdin: string}
     */
    public function request(int $i = -1): array
    {
        $peer = $this->peers[$i < 0 ? count($this->peers) + $i : $i];
        stream_set_timeout($peer, 2);
        $records = self::decodeRecords(stream_get_contents($peer));
        $params = '';
        $stdin = '';
        foreach ($records as $r) {
            if ($r['type'] === 4) {
                $params .= $r['content'];
            } elseif ($r['type'] === 5) {
                $stdin .= $r['content'];
            }
        }
        return ['records' => $records, 'params' => self::decodeParams($params), 'stdin' => $stdin];
    }

    /** One record, padded to 8 bytes unless $padding says otherwise. */
    public static function record(int $type, string $content, int $id = 1, ?int $padding = null): string
    {
        $padding ??= (8 - strlen($content) % 8) % 8;
        $length = strlen($content);
        return chr(1) . chr($type) . chr($id >> 8) . chr($id & 255) . chr($length >> 8) . chr($length & 255)
            . chr($padding) . "\0" . $content . str_repeat("\xee", $padding);
    }

    /** END_REQUEST for request 1 with the given protocol status. */
    public static function endRequest(int $protocolStatus = 0, int $appStatus = 0): string
    {
        return self::record(3, pack('N', $appStatus) . chr($protocolStatus) . "\0\0\0");
    }

    /**
     * Split bytes into records; fails the test on a truncated one.
     *
     * @return list<array{version: int, type: int, id: int, content: string, padding: int}>
     */
    public static function decodeRecords(string $bytes): array
    {
        $records = [];
        $at = 0;
        while ($at < strlen($bytes)) {
            if (strlen($bytes) - $at < 8) {
                throw new \UnexpectedValueException("truncated record header at $at");
            }
            $length = ord($bytes[$at + 4]) << 8 | ord($bytes[$at + 5]);
            $padding = ord($bytes[$at + 6]);
            if (strlen($bytes) - $at - 8 < $length + $padding) {
                throw new \UnexpectedValueException("truncated record at $at");
            }
            $records[] = [
                'version' => ord($bytes[$at]),
                'type' => ord($bytes[$at + 1]),
                'id' => ord($bytes[$at + 2]) << 8 | ord($bytes[$at + 3]),
                'content' => substr($bytes, $at + 8, $length),
                'padding' => $padding,
            ];
            $at += 8 + $length + $padding;
        }
        return $records;
    }

    /**
     * Decode a PARAMS stream into name => value.
     *
     * @return array<string, string>
     */
    public static function decodeParams(string $bytes): array
    {
        $params = [];
        $at = 0;
        while ($at < strlen($bytes)) {
            $lengths = [];
            for ($k = 0; $k < 2; $k++) {
                $b = ord($bytes[$at]);
                if ($b < 128) {
                    $lengths[] = $b;
                    $at += 1;
                } else {
                    $lengths[] = ($b & 0x7f) << 24 | ord($bytes[$at + 1]) << 16
                        | ord($bytes[$at + 2]) << 8 | ord($bytes[$at + 3]);
                    $at += 4;
                }
            }
            $name = substr($bytes, $at, $lengths[0]);
            $params[$name] = substr($bytes, $at + $lengths[0], $lengths[1]);
            $at += $lengths[0] + $lengths[1];
        }
        return $params;
    }
}
