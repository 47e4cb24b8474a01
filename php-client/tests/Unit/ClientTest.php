<?php

/**
 * ClientTest.php -- Herald\Client against canned FastCGI answers: what it
 * sends, how it validates input before sending, and how answers map to
 * return values and exceptions. No daemon involved.
 */

declare(strict_types=1);

namespace Herald\Tests\Unit;

use Herald\ApiException;
use Herald\Client;
use Herald\ConnectionException;
use Herald\Exception;
use Herald\Tests\Support\FakeHerald;
use Herald\Token;
use PHPUnit\Framework\TestCase;

final class ClientTest extends TestCase
{
    private FakeHerald $fake;

    protected function setUp(): void
    {
        $this->fake = new FakeHerald();
    }

    protected function tearDown(): void
    {
        putenv('HERALD_SOCKET');
        putenv('HERALD_SECRET');
    }

    /** @param array<string, mixed> $options */
    private function client(array $options = []): Client
    {
        return new Client($options + ['connector' => $this->fake->connector(), 'timeout' => 1.0]);
    }

    public function testPublish(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":3}');

        $n = $this->client()->publish([42, 'bob'], 'order.shipped', ['id' => 7, 'url' => 'a/b', 'name' => 'Zoë']);

        self::assertSame(3, $n);
        $sent = $this->fake->request();
        $body = '{"users":["42","bob"],"event":"order.shipped","data":{"id":7,"url":"a/b","name":"Zoë"}}';
        self::assertSame($body, $sent['stdin']);
        self::assertSame('POST', $sent['params']['REQUEST_METHOD']);
        self::assertSame('/publish', $sent['params']['SCRIPT_NAME']);
        self::assertSame('/publish', $sent['params']['REQUEST_URI']);
        self::assertSame('application/json', $sent['params']['CONTENT_TYPE']);
        self::assertSame((string) strlen($body), $sent['params']['CONTENT_LENGTH']);
    }

    public function testPublishOneUserWithoutData(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":0}');

        self::assertSame(0, $this->client()->publish(7, 'ping'));
        self::assertSame('{"users":["7"],"event":"ping","data":null}', $this->fake->request()['stdin']);
    }

    public function testPublishUserListKeysAreDropped(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":1}');

        $this->client()->publish(['a' => 'x', 5 => 9], 'e', []);
        self::assertSame('{"users":["x","9"],"event":"e","data":[]}', $this->fake->request()['stdin']);
    }

    public function testBroadcast(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":12}');

        self::assertSame(12, $this->client()->broadcast('news', [1, 2.5, 'é']));
        self::assertSame('{"broadcast":true,"event":"news","data":[1,2.5,"é"]}', $this->fake->request()['stdin']);
    }

    public function testPublishBatch(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":[2,0,5]}');

        $counts = $this->client()->publishBatch([
            ['users' => 1, 'event' => 'a', 'data' => ['x' => 1]],
            ['users' => ['u', 2], 'event' => 'b'],
            ['broadcast' => true, 'event' => 'c', 'data' => null],
        ]);

        self::assertSame([2, 0, 5], $counts);
        self::assertSame(
            '[{"users":["1"],"event":"a","data":{"x":1}},{"users":["u","2"],"event":"b","data":null},'
            . '{"broadcast":true,"event":"c","data":null}]',
            $this->fake->request()['stdin']
        );
    }

    public function testEmptyBatchSendsNothing(): void
    {
        self::assertSame([], $this->client()->publishBatch([]));
        self::assertSame([], $this->fake->connects);
    }

    public function testBatchNamesTheBadMessage(): void
    {
        try {
            $this->client()->publishBatch([['users' => 1, 'event' => 'a'], ['users' => [], 'event' => 'b']]);
            self::fail('no exception');
        } catch (Exception $e) {
            self::assertSame('message 1: users must be a user id or a non-empty list of them', $e->getMessage());
        }
        self::assertSame([], $this->fake->connects);
    }

    public function testBatchAnswerMustMatch(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":[1]}');

        $this->expectException(Exception::class);
        $this->expectExceptionMessage('one count per message');
        $this->client()->publishBatch([['users' => 1, 'event' => 'a'], ['users' => 2, 'event' => 'b']]);
    }

    /**
     * @dataProvider invalidMessages
     *
     * @param array<string, mixed> $message
     */
    public function testInvalidInputIsRefusedBeforeSending(array $message, string $error): void
    {
        try {
            $this->client()->publishBatch([$message]);
            self::fail('no exception');
        } catch (Exception $e) {
            self::assertNotInstanceOf(ApiException::class, $e);
            self::assertStringContainsString($error, $e->getMessage());
        }
        self::assertSame([], $this->fake->connects);
    }

    /** @return array<string, array{array<string, mixed>, string}> */
    public function invalidMessages(): array
    {
        return [
            'no users' => [['users' => [], 'event' => 'e'], 'non-empty list'],
            'users missing' => [['event' => 'e'], 'non-empty list'],
            'empty user id' => [['users' => '', 'event' => 'e'], '1 to 128 bytes, got 0'],
            'long user id' => [['users' => [str_repeat('u', 129)], 'event' => 'e'], 'got 129'],
            'control char' => [['users' => ["a\tb"], 'event' => 'e'], 'control characters'],
            'user not UTF-8' => [['users' => ["\xc3"], 'event' => 'e'], 'UTF-8'],
            'user null' => [['users' => [null], 'event' => 'e'], 'string or an int, got null'],
            'user float' => [['users' => [1.5], 'event' => 'e'], 'got float'],
            'user list nested' => [['users' => [['1']], 'event' => 'e'], 'got array'],
            'empty event' => [['users' => 1, 'event' => ''], 'event must be'],
            'event too long' => [['users' => 1, 'event' => str_repeat('e', 201)], 'event must be'],
            'event not a string' => [['users' => 1, 'event' => 5], 'event must be'],
            'event missing' => [['users' => 1], 'event must be'],
            'event not UTF-8' => [['users' => 1, 'event' => "\xff"], 'event must be'],
            'event with a newline' => [['users' => 1, 'event' => "a\nb"], 'without control characters'],
            'users and broadcast' => [['users' => 1, 'broadcast' => true, 'event' => 'e'], 'not both'],
            'broadcast false' => [['broadcast' => false, 'event' => 'e'], 'not both'],
            'unknown key' => [['users' => 1, 'event' => 'e', 'channel' => 'x'], 'unknown message key "channel"'],
            'data not UTF-8' => [['users' => 1, 'event' => 'e', 'data' => "\xff"], 'data cannot be encoded as JSON'],
            'data NAN' => [['users' => 1, 'event' => 'e', 'data' => NAN], 'data cannot be encoded as JSON'],
        ];
    }

    public function testEventLimitIsInclusive(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":1}');

        self::assertSame(1, $this->client()->publish('u', str_repeat('e', 200)));
    }

    public function testPublishValidatesToo(): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('event must be');
        $this->client()->publish('u', '');
    }

    /**
     * @dataProvider errorAnswers
     */
    public function testErrorAnswersBecomeApiExceptions(int $status, string $body, string $message): void
    {
        $this->fake->queueAnswer($status, $body);

        try {
            $this->client()->publish('u', 'e');
            self::fail('no exception');
        } catch (ApiException $e) {
            self::assertSame($status, $e->getCode());
            self::assertSame($status, $e->getStatus());
            self::assertSame($message, $e->getMessage());
        }
    }

    /** @return array<string, array{int, string, string}> */
    public function errorAnswers(): array
    {
        return [
            '400' => [400, '{"ok":false,"error":"users: each user id must be 1..128 bytes"}',
                'users: each user id must be 1..128 bytes'],
            '404' => [404, '{"ok":false,"error":"not found"}', 'not found'],
            '405' => [405, '{"ok":false,"error":"method not allowed"}', 'method not allowed'],
            '413' => [413, '{"ok":false,"error":"body over api_max_body"}', 'body over api_max_body'],
            'not JSON' => [502, "<html>Bad Gateway</html>\n", '<html>Bad Gateway</html>'],
            'empty body' => [500, '', 'no error text'],
            'error not a string' => [400, '{"ok":false,"error":{"code":1}}', '{"ok":false,"error":{"code":1}}'],
        ];
    }

    /**
     * @dataProvider unexpectedAnswers
     */
    public function testUnexpectedAnswers(string $body): void
    {
        $this->fake->queueAnswer(200, $body);

        try {
            $this->client()->publish('u', 'e');
            self::fail('no exception');
        } catch (Exception $e) {
            self::assertNotInstanceOf(ApiException::class, $e);
            self::assertStringContainsString('unexpected answer from herald', $e->getMessage());
        }
    }

    /** @return array<string, array{string}> */
    public function unexpectedAnswers(): array
    {
        return [
            'not JSON' => ['ok'],
            'ok false' => ['{"ok":false,"delivered":1}'],
            'no count' => ['{"ok":true}'],
            'count not an int' => ['{"ok":true,"delivered":"3"}'],
            'negative count' => ['{"ok":true,"delivered":-1}'],
        ];
    }

    public function testHealthAndStats(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"uptime":5,"workers":2}');
        $this->fake->queueAnswer(200, '{"ok":true,"uptime":5,"workers":2,"connections":0,"api_errors":{"400":1}}');
        $client = $this->client();

        self::assertSame(['ok' => true, 'uptime' => 5, 'workers' => 2], $client->health());
        $health = $this->fake->request(0);
        self::assertSame('GET', $health['params']['REQUEST_METHOD']);
        self::assertSame('/health', $health['params']['SCRIPT_NAME']);
        self::assertSame('0', $health['params']['CONTENT_LENGTH']);
        self::assertSame('', $health['stdin']);

        self::assertSame(['400' => 1], $client->stats()['api_errors']);
        self::assertSame('/stats', $this->fake->request(1)['params']['SCRIPT_NAME']);
        self::assertCount(2, $this->fake->connects); // one connection per request
    }

    public function testToken(): void
    {
        $token = $this->client(['secret' => 'test-secret'])->token(42, 60, ['room' => 'r']);
        $claims = Token::verify('test-secret', $token, 0);

        self::assertSame('42', $claims['sub']);
        self::assertSame('r', $claims['room']);
        self::assertSame($claims['iat'] + 60, $claims['exp']);
    }

    public function testTokenSecretFromEnvironment(): void
    {
        putenv('HERALD_SECRET=from-env');

        Token::verify('from-env', $this->client()->token('u'), 0);
        $this->addToAssertionCount(1);
    }

    public function testTokenWithoutSecret(): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('no secret configured');
        $this->client()->token('u');
    }

    public function testSocketOption(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true}');
        $this->fake->queueAnswer(200, '{"ok":true}');
        $this->fake->queueAnswer(200, '{"ok":true}');

        $this->client()->health();
        putenv('HERALD_SOCKET=/run/herald/api.sock');
        $this->client(['connect_timeout' => 0.25])->health();
        $this->client(['socket' => '/srv/h.sock', 'connect_timeout' => 2])->health();

        self::assertSame(
            [['/tmp/herald.sock', 1.0], ['/run/herald/api.sock', 0.25], ['/srv/h.sock', 2.0]],
            $this->fake->connects
        );
    }

    /**
     * @dataProvider invalidOptions
     *
     * @param array<string, mixed> $options
     */
    public function testInvalidOptions(array $options, string $message): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage($message);
        new Client($options);
    }

    /** @return array<string, array{array<string, mixed>, string}> */
    public function invalidOptions(): array
    {
        return [
            'unknown' => [['sockets' => '/x'], 'unknown option "sockets"'],
            'socket empty' => [['socket' => ''], '"socket"'],
            'secret empty' => [['secret' => ''], '"secret"'],
            'secret not a string' => [['secret' => 42], '"secret"'],
            'timeout zero' => [['timeout' => 0], '"timeout"'],
            'timeout string' => [['timeout' => '3'], '"timeout"'],
            'connect_timeout negative' => [['connect_timeout' => -1.0], '"connect_timeout"'],
            'connector' => [['connector' => 'no_such_function'], '"connector"'],
        ];
    }

    public function testConnectionFailure(): void
    {
        $client = new Client(['socket' => sys_get_temp_dir() . '/herald-none-' . getmypid() . '.sock']);

        $this->expectException(ConnectionException::class);
        $this->expectExceptionMessage('cannot connect');
        $client->publish('u', 'e');
    }

    public function testTimeout(): void
    {
        $this->fake->queue('', false);
        $start = microtime(true);

        try {
            $this->client(['timeout' => 0.2])->publish('u', 'e');
            self::fail('no exception');
        } catch (ConnectionException $e) {
            self::assertStringContainsString('did not answer within 0.2 s', $e->getMessage());
        }
        self::assertLessThan(1.0, microtime(true) - $start);
    }
}
