<?php

/**
 * ClientTest.php -- Herald\Client against canned FastCGI answers: what it
 * sends, how it validates input before sending, and how answers map to
 * return values and exceptions. No daemon involved. Channel publish,
 * presence and online (GET /presence with a percent-encoded query), channel
 * tokens and RPC request checks with the client's secret are at the end.
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
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":[2,0,5,1]}');

        $counts = $this->client()->publishBatch([
            ['users' => 1, 'event' => 'a', 'data' => ['x' => 1]],
            ['users' => ['u', 2], 'event' => 'b'],
            ['broadcast' => true, 'event' => 'c', 'data' => null],
            ['event' => 'd', 'channel' => 'team:12'],
        ]);

        self::assertSame([2, 0, 5, 1], $counts);
        self::assertSame(
            '[{"users":["1"],"event":"a","data":{"x":1}},{"users":["u","2"],"event":"b","data":null},'
            . '{"broadcast":true,"event":"c","data":null},{"channel":"team:12","event":"d","data":null}]',
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
            'users and broadcast' => [['users' => 1, 'broadcast' => true, 'event' => 'e'],
                'exactly one of "users", "broadcast" => true and "channel", not "users" and "broadcast"'],
            'users and channel' => [['users' => 1, 'channel' => 'c', 'event' => 'e'], 'not "users" and "channel"'],
            'all three' => [['users' => 1, 'broadcast' => true, 'channel' => 'c', 'event' => 'e'],
                'not "users" and "broadcast" and "channel"'],
            'broadcast false' => [['broadcast' => false, 'event' => 'e'], '"broadcast" must be true'],
            'channel not a string' => [['channel' => 12, 'event' => 'e'], 'channel must be a string, got int'],
            'channel invalid' => [['channel' => 'a b', 'event' => 'e'], 'got 0x20 at byte 1'],
            'channel empty' => [['channel' => '', 'event' => 'e'], '1 to 128 bytes, got 0'],
            'unknown key' => [['users' => 1, 'event' => 'e', 'channels' => 'x'], 'unknown message key "channels"'],
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

    public function testPublishChannel(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":4}');

        self::assertSame(4, $this->client()->publishChannel('team:12', 'deploy', ['v' => 3, 'by' => 'a/b']));
        $sent = $this->fake->request();
        self::assertSame('{"channel":"team:12","event":"deploy","data":{"v":3,"by":"a/b"}}', $sent['stdin']);
        self::assertSame('POST', $sent['params']['REQUEST_METHOD']);
        self::assertSame('/publish', $sent['params']['SCRIPT_NAME']);
    }

    public function testPublishChannelWithoutDataAndEveryAllowedCharacter(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":0}');
        $name = 'AZaz09_-.:@/=+';

        self::assertSame(0, $this->client()->publishChannel($name, 'e'));
        self::assertSame('{"channel":"AZaz09_-.:@/=+","event":"e","data":null}', $this->fake->request()['stdin']);
    }

    public function testPublishChannelValidatesTheEvent(): void
    {
        try {
            $this->client()->publishChannel('c', "a\nb");
            self::fail('no exception');
        } catch (Exception $e) {
            self::assertStringContainsString('event must be', $e->getMessage());
        }
        self::assertSame([], $this->fake->connects);
    }

    /**
     * @dataProvider invalidChannels
     */
    public function testInvalidChannelNamesAreRefusedBeforeSending(string $channel, string $error): void
    {
        $client = $this->client(['secret' => 'k']);
        $calls = [
            fn () => $client->publishChannel($channel, 'e'),
            fn () => $client->presence($channel),
            fn () => $client->channelToken('u', $channel),
        ];
        foreach ($calls as $i => $call) {
            try {
                $call();
                self::fail("call $i: no exception");
            } catch (Exception $e) {
                self::assertNotInstanceOf(ApiException::class, $e);
                self::assertStringContainsString($error, $e->getMessage(), "call $i");
            }
        }
        self::assertSame([], $this->fake->connects);
    }

    /** @return array<string, array{string, string}> */
    public function invalidChannels(): array
    {
        return [
            'empty' => ['', 'must be 1 to 128 bytes, got 0'],
            '129 bytes' => [str_repeat('c', 129), 'must be 1 to 128 bytes, got 129'],
            'space' => ['team 12', 'got 0x20 at byte 4'],
            'pattern' => ['team:*', 'got "*" at byte 5'],
            'query characters' => ['a&b', 'got "&" at byte 1'],
            'percent' => ['a%3A', 'got "%" at byte 1'],
            'question mark' => ['a?b', 'got "?" at byte 1'],
            'comma' => ['a,b', 'got "," at byte 1'],
            'hash' => ['#news', 'got "#" at byte 0'],
            'newline' => ["a\n", 'got 0x0a at byte 1'],
            'NUL' => ["a\0b", 'got 0x00 at byte 1'],
            'UTF-8' => ['café', 'got 0xc3 at byte 3'],
        ];
    }

    public function testChannelNameLimitIsInclusive(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":0}');

        self::assertSame(0, $this->client()->publishChannel(str_repeat('c', 128), 'e'));
    }

    public function testPresence(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"channel":"room:1","members":['
            . '{"user":"42","info":{"name":"Ann"},"connections":2},{"user":"7","connections":1},'
            . '{"user":"8","info":null,"connections":1}]}');

        $members = $this->client()->presence('room:1');

        self::assertSame([
            ['user' => '42', 'info' => ['name' => 'Ann'], 'connections' => 2],
            ['user' => '7', 'info' => null, 'connections' => 1],
            ['user' => '8', 'info' => null, 'connections' => 1],
        ], $members);
        $sent = $this->fake->request();
        self::assertSame('GET', $sent['params']['REQUEST_METHOD']);
        self::assertSame('/presence', $sent['params']['SCRIPT_NAME']);
        self::assertSame('channel=room%3A1', $sent['params']['QUERY_STRING']);
        self::assertSame('/presence?channel=room%3A1', $sent['params']['REQUEST_URI']);
        self::assertSame('0', $sent['params']['CONTENT_LENGTH']);
        self::assertSame('', $sent['stdin']);
    }

    public function testPresenceQueryEncodesEveryReservedCharacter(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"channel":"x","members":[]}');

        self::assertSame([], $this->client()->presence('a+b=c/d@e:f.g_h-i'));
        self::assertSame(
            'channel=a%2Bb%3Dc%2Fd%40e%3Af.g_h-i',
            $this->fake->request()['params']['QUERY_STRING']
        );
    }

    public function testPresenceOfAChannelThatIsNotOne(): void
    {
        $this->fake->queueAnswer(400, '{"ok":false,"error":"not a presence channel"}');

        try {
            $this->client()->presence('team:12');
            self::fail('no exception');
        } catch (ApiException $e) {
            self::assertSame(400, $e->getCode());
            self::assertSame('not a presence channel', $e->getMessage());
        }
    }

    /**
     * @dataProvider unexpectedPresenceAnswers
     */
    public function testUnexpectedPresenceAnswers(string $body): void
    {
        $this->fake->queueAnswer(200, $body);

        $this->expectException(Exception::class);
        $this->expectExceptionMessage('unexpected answer from herald');
        $this->client()->presence('room:1');
    }

    /** @return array<string, array{string}> */
    public function unexpectedPresenceAnswers(): array
    {
        return [
            'no members' => ['{"ok":true,"channel":"room:1"}'],
            'members an object' => ['{"ok":true,"members":{"42":{"user":"42","connections":1}}}'],
            'member a string' => ['{"ok":true,"members":["42"]}'],
            'user an int' => ['{"ok":true,"members":[{"user":42,"connections":1}]}'],
            'no connections' => ['{"ok":true,"members":[{"user":"42"}]}'],
            'connections a string' => ['{"ok":true,"members":[{"user":"42","connections":"1"}]}'],
            'connections negative' => ['{"ok":true,"members":[{"user":"42","connections":-1}]}'],
            'ok false' => ['{"ok":false,"members":[]}'],
        ];
    }

    public function testOnline(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"user":"42","online":true,"connections":2}');
        $this->fake->queueAnswer(200, '{"ok":true,"user":"7","online":false,"connections":0}');
        $client = $this->client();

        self::assertSame(['online' => true, 'connections' => 2], $client->online(42));
        $sent = $this->fake->request(0);
        self::assertSame('GET', $sent['params']['REQUEST_METHOD']);
        self::assertSame('/presence', $sent['params']['SCRIPT_NAME']);
        self::assertSame('user=42', $sent['params']['QUERY_STRING']);
        self::assertSame('/presence?user=42', $sent['params']['REQUEST_URI']);

        self::assertSame(['online' => false, 'connections' => 0], $client->online('7'));
    }

    public function testOnlineQueryIsPercentEncoded(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"online":false,"connections":0}');

        $this->client()->online('a b&c=d%/é+?#');

        $params = $this->fake->request()['params'];
        self::assertSame('user=a%20b%26c%3Dd%25%2F%C3%A9%2B%3F%23', $params['QUERY_STRING']);
        self::assertSame('/presence?user=a%20b%26c%3Dd%25%2F%C3%A9%2B%3F%23', $params['REQUEST_URI']);
        self::assertSame('/presence', $params['SCRIPT_NAME']);
        parse_str($params['QUERY_STRING'], $decoded);
        self::assertSame(['user' => 'a b&c=d%/é+?#'], $decoded);
    }

    public function testOnlineRefusesAnInvalidUserBeforeSending(): void
    {
        try {
            $this->client()->online("a\tb");
            self::fail('no exception');
        } catch (Exception $e) {
            self::assertStringContainsString('control characters', $e->getMessage());
        }
        self::assertSame([], $this->fake->connects);
    }

    /**
     * @dataProvider unexpectedOnlineAnswers
     */
    public function testUnexpectedOnlineAnswers(string $body): void
    {
        $this->fake->queueAnswer(200, $body);

        $this->expectException(Exception::class);
        $this->expectExceptionMessage('unexpected answer from herald');
        $this->client()->online('42');
    }

    /** @return array<string, array{string}> */
    public function unexpectedOnlineAnswers(): array
    {
        return [
            'nothing' => ['{"ok":true}'],
            'online an int' => ['{"ok":true,"online":1,"connections":1}'],
            'no connections' => ['{"ok":true,"online":true}'],
            'connections a float' => ['{"ok":true,"online":true,"connections":1.5}'],
            'connections negative' => ['{"ok":true,"online":false,"connections":-1}'],
        ];
    }

    public function testChannelToken(): void
    {
        $token = $this->client(['secret' => 'test-secret'])->channelToken(42, 'doc:7', 120);
        $claims = Token::verify('test-secret', $token, 0);

        self::assertSame(['sub', 'iat', 'exp', 'channel'], array_keys($claims));
        self::assertSame('42', $claims['sub']);
        self::assertSame('doc:7', $claims['channel']);
        self::assertSame($claims['iat'] + 120, $claims['exp']);
        self::assertEqualsWithDelta(time(), $claims['iat'], 5);
    }

    public function testChannelTokenWithoutSecret(): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('no secret configured');
        $this->client()->channelToken('u', 'doc:7');
    }

    public function testChannelTokenTtl(): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('ttl must be at least 1 second, got 0');
        $this->client(['secret' => 'k'])->channelToken('u', 'doc:7', 0);
    }

    public function testRpcRequestUsesTheClientsSecret(): void
    {
        $body = '{"type":"rpc","method":"m","user":null,"data":null,"time":' . time() . '}';
        $client = $this->client(['secret' => 'site-secret']);

        $request = $client->rpcRequest($body, hash_hmac('sha256', $body, 'site-secret'));
        self::assertSame('m', $request['method']);

        $this->expectException(Exception::class);
        $this->expectExceptionMessage('does not match');
        $client->rpcRequest($body, hash_hmac('sha256', $body, 'other-secret'));
    }

    public function testRpcRequestWithoutSecret(): void
    {
        $body = '{"time":' . time() . '}';

        $this->expectException(Exception::class);
        $this->expectExceptionMessage('no secret configured');
        $this->client()->rpcRequest($body, hash_hmac('sha256', $body, 'k'));
    }
}
