<?php

/**
 * FastCgiTest.php -- the FastCGI record codec byte for byte, response
 * parsing, and FastCgiTransport's one-shot request cycle over a socket pair
 * (no daemon). Kept connections: PersistentTest.
 */

declare(strict_types=1);

namespace Herald\Tests\Unit;

use Herald\ConnectionException;
use Herald\Exception;
use Herald\FastCgi;
use Herald\FastCgiTransport;
use Herald\ProtocolException;
use Herald\Tests\Support\FakeHerald;
use PHPUnit\Framework\TestCase;

final class FastCgiTest extends TestCase
{
    public function testBeginRequestRecordBytes(): void
    {
        $bytes = FastCgi::encodeRequest([], '');

        // BEGIN_REQUEST: version 1, type 1, id 1, length 8, padding 0; role RESPONDER, flags 0
        self::assertSame(
            "\x01\x01\x00\x01\x00\x08\x00\x00" . "\x00\x01\x00\x00\x00\x00\x00\x00"
            . "\x01\x04\x00\x01\x00\x00\x00\x00"    // empty PARAMS
            . "\x01\x05\x00\x01\x00\x00\x00\x00",   // empty STDIN
            $bytes
        );
    }

    public function testRecordPaddedToEightBytes(): void
    {
        self::assertSame(
            "\x01\x05\x00\x01\x00\x03\x05\x00abc\0\0\0\0\0",
            FastCgi::encodeRecord(FastCgi::STDIN, 'abc')
        );
        self::assertSame(
            "\x01\x06\x00\x01\x00\x08\x00\x0012345678",
            FastCgi::encodeRecord(FastCgi::STDOUT, '12345678')
        );
        self::assertSame("\x01\x04\x00\x00\x00\x00\x00\x00", FastCgi::encodeRecord(FastCgi::PARAMS, '', 0));
        for ($n = 0; $n <= 17; $n++) {
            $record = FastCgi::encodeRecord(FastCgi::STDIN, str_repeat('x', $n));
            self::assertSame(0, strlen($record) % 8, "content of $n bytes");
            self::assertSame((8 - $n % 8) % 8, ord($record[6]), "padding for $n bytes");
        }
        $max = FastCgi::encodeRecord(FastCgi::STDIN, str_repeat('x', 65535));
        self::assertSame("\x01\x05\x00\x01\xff\xff\x01\x00", substr($max, 0, 8));
        self::assertSame(8 + 65535 + 1, strlen($max));
    }

    public function testRecordOver65535Refused(): void
    {
        $this->expectException(Exception::class);
        FastCgi::encodeRecord(FastCgi::STDIN, str_repeat('x', 65536));
    }

    public function testNameValueLengths(): void
    {
        self::assertSame("\x01\x02Abc", FastCgi::encodeNameValue('A', 'bc'));
        self::assertSame("\x00\x00", FastCgi::encodeNameValue('', ''));

        $v127 = str_repeat('v', 127);
        $v128 = str_repeat('v', 128);
        self::assertSame("\x01\x7fN" . $v127, FastCgi::encodeNameValue('N', $v127));
        self::assertSame("\x01\x80\x00\x00\x80N" . $v128, FastCgi::encodeNameValue('N', $v128));
        self::assertSame("\x80\x00\x00\x80\x00" . $v128, FastCgi::encodeNameValue($v128, ''));
        self::assertSame("\x7f\x80\x00\x00\x80" . $v127 . $v128, FastCgi::encodeNameValue($v127, $v128));

        $big = str_repeat('b', 70000); // 0x11170
        self::assertSame("\x01\x80\x01\x11\x70N", substr(FastCgi::encodeNameValue('N', $big), 0, 6));
    }

    public function testStdinSplitAt65535(): void
    {
        $cases = [0 => [], 1 => [1], 65535 => [65535], 65536 => [65535, 1], 200000 => [65535, 65535, 65535, 3395]];
        foreach ($cases as $size => $want) {
            $body = $size > 0 ? random_bytes($size) : '';
            $records = FakeHerald::decodeRecords(FastCgi::encodeStream(FastCgi::STDIN, $body));
            $last = array_pop($records);
            self::assertSame(['version' => 1, 'type' => 5, 'id' => 1, 'content' => '', 'padding' => 0], $last);
            self::assertSame($want, array_map(fn ($r) => strlen($r['content']), $records), "body of $size bytes");
            self::assertSame($body, implode('', array_column($records, 'content')));
            foreach ($records as $r) {
                self::assertSame(5, $r['type']);
                self::assertSame(0, (8 + strlen($r['content']) + $r['padding']) % 8);
            }
        }
    }

    public function testParamsStreamSplitAcrossRecords(): void
    {
        $params = ['REQUEST_METHOD' => 'POST', 'HUGE' => str_repeat('h', 70000), 'AFTER' => 'x'];
        $records = FakeHerald::decodeRecords(FastCgi::encodeRequest($params, 'body'));

        self::assertSame([1, 4, 4, 4, 5, 5], array_column($records, 'type'));
        self::assertSame(65535, strlen($records[1]['content']));
        self::assertSame('', $records[3]['content']);
        self::assertSame('', $records[5]['content']);
        self::assertSame($params, FakeHerald::decodeParams($records[1]['content'] . $records[2]['content']));
        self::assertSame('body', $records[4]['content']);
        self::assertSame([1], array_values(array_unique(array_column($records, 'id'))));
        self::assertSame([1], array_values(array_unique(array_column($records, 'version'))));
    }

    public function testParams(): void
    {
        self::assertSame([
            'GATEWAY_INTERFACE' => 'CGI/1.1',
            'SERVER_PROTOCOL' => 'HTTP/1.1',
            'REQUEST_METHOD' => 'POST',
            'SCRIPT_NAME' => '/publish',
            'REQUEST_URI' => '/publish',
            'QUERY_STRING' => '',
            'CONTENT_TYPE' => 'application/json',
            'CONTENT_LENGTH' => '2',
        ], FastCgi::params('POST', '/publish', '{}'));

        $get = FastCgi::params('GET', '/stats?x=1&y', '');
        self::assertSame('/stats', $get['SCRIPT_NAME']);
        self::assertSame('/stats?x=1&y', $get['REQUEST_URI']);
        self::assertSame('x=1&y', $get['QUERY_STRING']);
        self::assertSame('0', $get['CONTENT_LENGTH']);
    }

    public function testRequestIsEncodeRequestOfParams(): void
    {
        $bodies = ['', '{}', str_repeat('b', 7), str_repeat('c', 65535), str_repeat('d', 65536), str_repeat('e', 140000)];
        $uris = [['POST', '/publish'], ['GET', '/presence?channel=a%20b'], ['GET', '/health'], ['POST', '/' . str_repeat('p', 300)]];
        foreach ($bodies as $body) {
            foreach ($uris as [$method, $uri]) {
                foreach ([[1, false], [2, true], [65535, true]] as [$id, $keep]) {
                    self::assertSame(
                        FastCgi::encodeRequest(FastCgi::params($method, $uri, $body), $body, $id, $keep),
                        FastCgi::request($method, $uri, $body, $id, $keep),
                        "$method $uri, " . strlen($body) . " bytes, id $id"
                    );
                }
            }
        }
    }

    public function testRequestHeadsStayRightWhenTheirCacheOverflows(): void
    {
        // more URIs than the cache keeps: it is emptied and filled again, never mixed up
        for ($round = 0; $round < 2; $round++) {
            for ($i = 0; $i < 100; $i++) {
                $uri = "/presence?user=u$i";
                self::assertSame(
                    FastCgi::encodeRequest(FastCgi::params('GET', $uri, ''), '', 9, true),
                    FastCgi::request('GET', $uri, '', 9, true)
                );
            }
        }
    }

    public function testParseResponseOfHeraldsUsualHead(): void
    {
        $r = FastCgi::parseResponse(
            "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n{\"ok\":true,\"delivered\":3}\n"
        );
        self::assertSame([
            'status' => 200,
            'headers' => ['status' => '200 OK', 'content-type' => 'application/json', 'content-length' => '26'],
            'body' => "{\"ok\":true,\"delivered\":3}\n",
        ], $r);
        self::assertSame('', FastCgi::parseResponse(
            "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"
        )['body']);
    }

    public function testParseResponseNearHeraldsUsualHead(): void
    {
        $head = "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: ";
        // more headers, a length that is not digits, none at all: parsed in full
        $r = FastCgi::parseResponse($head . "5\r\nX-Extra: 1\r\n\r\nhello");
        self::assertSame(['status' => '200 OK', 'content-type' => 'application/json', 'content-length' => '5',
            'x-extra' => '1'], $r['headers']);
        self::assertSame('hello', $r['body']);
        self::assertSame('5 x', FastCgi::parseResponse($head . "5 x\r\n\r\n")['headers']['content-length']);
        self::assertSame('', FastCgi::parseResponse($head . "\r\n\r\n{}")['headers']['content-length']);
        self::assertSame('12345678901', FastCgi::parseResponse($head . "12345678901\r\n\r\n")['headers']['content-length']);
        foreach ([$head . '26', $head . "26\r\n", $head . "26\r\nbad line\r\n\r\n"] as $stdout) {
            try {
                FastCgi::parseResponse($stdout);
                self::fail('accepted ' . json_encode($stdout));
            } catch (ProtocolException $e) {
                self::assertStringContainsString('malformed answer from herald', $e->getMessage());
            }
        }
    }

    public function testParseResponseWithStatus(): void
    {
        $stdout = "Status: 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"ok\":false}\r\n\r\nx";
        $r = FastCgi::parseResponse($stdout);

        self::assertSame(404, $r['status']);
        self::assertSame(['status' => '404 Not Found', 'content-type' => 'application/json'], $r['headers']);
        self::assertSame("{\"ok\":false}\r\n\r\nx", $r['body']);
    }

    public function testParseResponseDefaults(): void
    {
        $r = FastCgi::parseResponse("Content-type:application/json\n\n{}");
        self::assertSame(200, $r['status']);
        self::assertSame(['content-type' => 'application/json'], $r['headers']);
        self::assertSame('{}', $r['body']);

        self::assertSame(413, FastCgi::parseResponse("Status: 413\r\n\r\n")['status']);
        self::assertSame('', FastCgi::parseResponse("Status: 413\r\n\r\n")['body']);
    }

    /**
     * @dataProvider malformedResponses
     */
    public function testParseResponseMalformed(string $stdout): void
    {
        $this->expectException(ProtocolException::class);
        FastCgi::parseResponse($stdout);
    }

    /** @return array<string, array{string}> */
    public function malformedResponses(): array
    {
        return [
            'no end of headers' => ["Status: 200\r\nContent-Type: application/json\r\n{}"],
            'empty' => [''],
            'status not a number' => ["Status: abc\r\n\r\n"],
            'status out of range' => ["Status: 999\r\n\r\n"],
            'status too long' => ["Status: 2000\r\n\r\n"],
            'header without colon' => ["HTTP/1.1 200 OK\r\n\r\n"],
        ];
    }

    public function testRequestOverSocketPair(): void
    {
        $fake = new FakeHerald();
        $fake->queue(
            FakeHerald::record(6, "Status: 201 Cre")                 // the head split mid-line
            . FakeHerald::record(6, "ated\r\nContent-Type: application/json\r\n\r\n{\"ok\":")
            . FakeHerald::record(7, 'a warning')                     // stderr beside stdout
            . FakeHerald::record(6, 'true}', 1, 3)                   // odd padding is skipped, not trusted
            . FakeHerald::record(6, '')
            . FakeHerald::endRequest()
        );
        $fcgi = new FastCgiTransport('/run/herald.sock', 0.5, 2.0, $fake->connector());

        $r = $fcgi->request('POST', '/publish', '{"event":"e"}');

        self::assertSame(201, $r['status']);
        self::assertSame('{"ok":true}', $r['body']);
        self::assertSame([['/run/herald.sock', 0.5]], $fake->connects);
        $sent = $fake->request();
        self::assertSame('{"event":"e"}', $sent['stdin']);
        self::assertSame(FastCgi::params('POST', '/publish', '{"event":"e"}'), $sent['params']);
        self::assertSame([1, 4, 4, 5, 5], array_column($sent['records'], 'type'));
        self::assertSame("\x00\x01\x00\x00\x00\x00\x00\x00", $sent['records'][0]['content']);
    }

    public function testStderrWithoutStdoutIsAnError(): void
    {
        $fake = new FakeHerald();
        $fake->queue(FakeHerald::record(7, "api: out of memory\n") . FakeHerald::endRequest(0, 1));

        $this->expectException(ProtocolException::class);
        $this->expectExceptionMessage('herald reported: api: out of memory');
        (new FastCgiTransport('s', 1.0, 1.0, $fake->connector()))->request('GET', '/health');
    }

    public function testTimeoutWhenNothingAnswers(): void
    {
        $fake = new FakeHerald();
        $fake->queue('', false);
        $fcgi = new FastCgiTransport('s', 1.0, 0.2, $fake->connector());
        $start = microtime(true);

        try {
            $fcgi->request('GET', '/health');
            self::fail('no timeout');
        } catch (ConnectionException $e) {
            self::assertStringContainsString('did not answer within 0.2 s', $e->getMessage());
        }
        $elapsed = microtime(true) - $start;
        self::assertGreaterThanOrEqual(0.19, $elapsed);
        self::assertLessThan(1.0, $elapsed);
    }

    public function testTimeoutOnAnAnswerThatStopsHalfway(): void
    {
        $fake = new FakeHerald();
        $fake->queue(FakeHerald::record(6, "Status: 200\r\n\r\n{}") . substr(FakeHerald::endRequest(), 0, 5), false);
        $start = microtime(true);

        try {
            (new FastCgiTransport('s', 1.0, 0.2, $fake->connector()))->request('GET', '/health');
            self::fail('no timeout');
        } catch (ConnectionException $e) {
            self::assertStringContainsString('did not answer', $e->getMessage());
        }
        self::assertLessThan(1.0, microtime(true) - $start);
    }

    public function testTotalDeadlineAgainstASlowDrip(): void
    {
        // a child process drips a record one byte every 20 ms: every read gets data in time,
        // only the deadline on the whole exchange can stop it
        [$ours, $theirs] = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        $script = 'foreach (str_split(base64_decode($argv[1])) as $b) { echo $b; usleep(20000); }';
        $record = base64_encode(FakeHerald::record(6, str_repeat('x', 200)));
        $null = ['file', '/dev/null', 'r+'];
        $child = proc_open([PHP_BINARY, '-n', '-r', $script, $record], [0 => $null, 1 => $theirs, 2 => $null], $pipes);
        self::assertIsResource($child);
        fclose($theirs);
        $start = microtime(true);
        try {
            (new FastCgiTransport('s', 1.0, 0.3, fn () => $ours))->request('GET', '/health');
            self::fail('no timeout');
        } catch (ConnectionException $e) {
            self::assertStringContainsString('did not answer within 0.3 s', $e->getMessage());
        } finally {
            proc_terminate($child);
            proc_close($child);
        }
        $elapsed = microtime(true) - $start;
        self::assertGreaterThanOrEqual(0.29, $elapsed);
        self::assertLessThan(1.0, $elapsed);
    }

    public function testAnAnswerThatArrivesInPiecesIsPutTogether(): void
    {
        // a child process writes the answer 3 bytes at a time: reads end mid-header and mid-content
        [$ours, $theirs] = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        $script = 'foreach (str_split(base64_decode($argv[1]), 3) as $b) { echo $b; usleep(2000); }';
        $answer = FakeHerald::record(6, "Status: 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\":")
            . FakeHerald::record(6, 'true}', 1, 5) . FakeHerald::record(6, '') . FakeHerald::endRequest();
        $null = ['file', '/dev/null', 'r+'];
        $child = proc_open([PHP_BINARY, '-n', '-r', $script, base64_encode($answer)], [0 => $null, 1 => $theirs, 2 => $null], $pipes);
        self::assertIsResource($child);
        fclose($theirs);
        try {
            $r = (new FastCgiTransport('s', 1.0, 5.0, fn () => $ours))->request('GET', '/health');
        } finally {
            proc_terminate($child);
            proc_close($child);
        }
        self::assertSame(['status' => 200, 'headers' => ['status' => '200 OK', 'content-type' => 'application/json'],
            'body' => '{"ok":true}'], $r);
    }

    public function testConnectionClosedBeforeEndRequest(): void
    {
        $fake = new FakeHerald();
        $fake->queue(FakeHerald::record(6, "Status: 200\r\n\r\n{}"));

        $this->expectException(ConnectionException::class);
        $this->expectExceptionMessage('closed the connection');
        (new FastCgiTransport('s', 1.0, 2.0, $fake->connector()))->request('GET', '/health');
    }

    public function testEndRequestWithProtocolError(): void
    {
        $fake = new FakeHerald();
        $fake->queue(FakeHerald::endRequest(2)); // FCGI_OVERLOADED

        $this->expectException(ConnectionException::class);
        $this->expectExceptionMessage('FastCGI status 2');
        (new FastCgiTransport('s', 1.0, 2.0, $fake->connector()))->request('GET', '/health');
    }

    public function testNotFastCgi(): void
    {
        $fake = new FakeHerald();
        $fake->queue("HTTP/1.1 200 OK\r\n\r\n");

        $this->expectException(ProtocolException::class);
        $this->expectExceptionMessage('not FastCGI');
        (new FastCgiTransport('s', 1.0, 2.0, $fake->connector()))->request('GET', '/health');
    }

    public function testKeepConnFlagAndRequestId(): void
    {
        $records = FakeHerald::decodeRecords(FastCgi::encodeRequest(['A' => 'b'], 'x', 0x1234, true));

        self::assertSame("\x00\x01\x01\x00\x00\x00\x00\x00", $records[0]['content']);
        self::assertSame([0x1234], array_values(array_unique(array_column($records, 'id'))));
        $this->expectException(Exception::class);
        FastCgi::encodeRecord(FastCgi::STDIN, '', 0x10000);
    }

    /**
     * @dataProvider strangeRecords
     */
    public function testStrangeRecordsAreProtocolErrors(string $bytes, string $message): void
    {
        $fake = new FakeHerald();
        $fake->queue($bytes);

        $this->expectException(ProtocolException::class);
        $this->expectExceptionMessage($message);
        (new FastCgiTransport('s', 1.0, 2.0, $fake->connector()))->request('GET', '/health');
    }

    /** @return array<string, array{string, string}> */
    public function strangeRecords(): array
    {
        $answer = FakeHerald::record(6, "Status: 200\r\n\r\n{}") . FakeHerald::record(6, '');
        return [
            'another request id' => [FakeHerald::record(6, 'not ours', 2) . $answer . FakeHerald::endRequest(),
                'a record for request 2, not 1'],
            'a management record' => [FakeHerald::record(11, str_repeat("\0", 8), 0) . $answer
                . FakeHerald::endRequest(), 'a record for request 0, not 1'],
            'an unknown type' => [FakeHerald::record(9, 'x') . $answer . FakeHerald::endRequest(),
                'a record of type 9'],
            'end of request for another id' => [$answer . FakeHerald::record(3, str_repeat("\0", 8), 7),
                'a record for request 7, not 1'],
        ];
    }

    public function testConnectUnixFailure(): void
    {
        $path = sys_get_temp_dir() . '/herald-missing-' . getmypid() . '.sock';

        $this->expectException(ConnectionException::class);
        $this->expectExceptionMessage("cannot connect to unix://$path");
        (new FastCgiTransport($path, 0.5, 0.5))->request('GET', '/health');
    }

    public function testConnectUnixToAListeningSocket(): void
    {
        $path = sys_get_temp_dir() . '/herald-test-' . getmypid() . '.sock';
        @unlink($path);
        $server = stream_socket_server("unix://$path", $errno, $errstr);
        self::assertIsResource($server, $errstr);
        try {
            $stream = FastCgiTransport::connectUnix($path, 0.5);
            self::assertIsResource($stream);
            fclose($stream);
            $stream = FastCgiTransport::connectUnix("unix://$path", 0.5);
            self::assertIsResource($stream);
            fclose($stream);
        } finally {
            fclose($server);
            @unlink($path);
        }
    }
}
