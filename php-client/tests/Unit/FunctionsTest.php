<?php

/**
 * FunctionsTest.php -- herald.php: the plain functions never throw (except
 * herald_token and herald_channel_token on a programming error), return false
 * on failure and write exactly one error_log line; the file loads with and
 * without an autoloader. The RPC functions' answers (status, headers, body)
 * are checked under php-fpm in RpcScriptTest.php; here only the failures
 * that print nothing.
 */

declare(strict_types=1);

namespace Herald\Tests\Unit;

use Herald\Exception;
use Herald\Tests\Support\FakeHerald;
use Herald\Token;
use PHPUnit\Framework\TestCase;

final class FunctionsTest extends TestCase
{
    private FakeHerald $fake;
    private string $log;
    private string $savedLog;

    protected function setUp(): void
    {
        $this->fake = new FakeHerald();
        $this->log = tempnam(sys_get_temp_dir(), 'herald-log-');
        $this->savedLog = (string) ini_get('error_log');
        ini_set('error_log', $this->log);
        herald_configure(['connector' => $this->fake->connector(), 'timeout' => 1.0]);
    }

    protected function tearDown(): void
    {
        ini_set('error_log', $this->savedLog);
        @unlink($this->log);
        putenv('HERALD_SECRET');
    }

    /** @return list<string> the lines written to the error log, without timestamps */
    private function logLines(): array
    {
        $lines = file($this->log, FILE_IGNORE_NEW_LINES) ?: [];
        return array_map(fn ($l) => (string) preg_replace('/^\[[^]]*\] /', '', $l), $lines);
    }

    public function testPublishAndBroadcast(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":2}');
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":9}');

        self::assertSame(2, herald_publish([1, 2], 'e', ['k' => 'v']));
        self::assertSame('{"users":["1","2"],"event":"e","data":{"k":"v"}}', $this->fake->request()['stdin']);
        self::assertSame(9, herald_broadcast('e', null));
        self::assertSame([], $this->logLines());
    }

    public function testPublishFailureIsOneLogLine(): void
    {
        herald_configure(['socket' => sys_get_temp_dir() . '/herald-none-' . getmypid() . '.sock']);

        self::assertFalse(herald_publish('u', 'e', null));
        $lines = $this->logLines();
        self::assertCount(1, $lines);
        self::assertStringStartsWith('herald: publish failed: cannot connect to unix://', $lines[0]);
    }

    public function testApiErrorIsLoggedWithStatus(): void
    {
        $this->fake->queueAnswer(413, '{"ok":false,"error":"body over\napi_max_body"}');

        self::assertFalse(herald_publish('u', 'e', str_repeat('x', 100)));
        self::assertSame(['herald: publish failed: HTTP 413: body over api_max_body'], $this->logLines());
    }

    public function testInvalidInputIsLoggedNotThrown(): void
    {
        self::assertFalse(herald_publish([], 'e', null));
        self::assertFalse(herald_broadcast('', null));
        self::assertFalse(herald_publish('u', 'e', NAN));
        self::assertSame([
            'herald: publish failed: users must be a user id or a non-empty list of them',
            'herald: publish failed: event must be a UTF-8 string of 1 to 200 bytes without control characters',
            'herald: publish failed: data cannot be encoded as JSON: Inf and NaN cannot be JSON encoded',
        ], $this->logLines());
        self::assertSame([], $this->fake->connects);
    }

    public function testTimeoutIsLogged(): void
    {
        herald_configure(['connector' => $this->fake->connector(), 'timeout' => 0.1]);
        $this->fake->queue('', false);

        self::assertFalse(herald_broadcast('e', 1));
        self::assertSame(['herald: publish failed: herald did not answer within 0.1 s'], $this->logLines());
    }

    public function testBadConfigurationIsLoggedAndIgnored(): void
    {
        herald_configure(['sokcet' => '/x']);
        self::assertSame(['herald: configure failed: unknown option "sokcet"'], $this->logLines());

        $this->fake->queueAnswer(200, '{"ok":true,"delivered":1}');
        self::assertSame(1, herald_publish('u', 'e', null)); // the previous configuration still holds
    }

    public function testToken(): void
    {
        herald_configure(['secret' => 'test-secret']);

        self::assertSame('42', Token::verify('test-secret', herald_token(42, 60), 0)['sub']);
    }

    public function testTokenSecretFromEnvironment(): void
    {
        putenv('HERALD_SECRET=env-secret');
        herald_configure([]);

        self::assertSame('u', Token::verify('env-secret', herald_token('u'), 0)['sub']);
    }

    public function testTokenWithoutSecretThrows(): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('no secret configured');
        herald_token('u');
    }

    public function testTokenWithInvalidUserThrows(): void
    {
        herald_configure(['secret' => 'k']);

        $this->expectException(Exception::class);
        herald_token('');
    }

    /**
     * @dataProvider loaders
     */
    public function testLoadsWithAndWithoutAutoloader(string $prelude): void
    {
        $root = dirname(__DIR__, 2);
        $code = $prelude
            . 'require_once ' . var_export("$root/herald.php", true) . ';'
            . 'require_once ' . var_export("$root/herald.php", true) . ';'
            . 'herald_rpc_error("Bad code", "m");'
            . 'echo json_encode([function_exists("herald_publish"), class_exists("Herald\\\\Client", false),'
            . ' class_exists("Herald\\\\Rpc", false), herald_publish("u", "e", null),'
            . ' herald_publish_channel("c", "e"), herald_presence("c"), herald_online("u")]);';
        $cmd = [PHP_BINARY, '-n', '-d', 'error_log=/dev/null', '-r', $code];
        $env = ['HERALD_SOCKET' => '/nonexistent/herald.sock'];
        $proc = proc_open($cmd, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env);
        self::assertIsResource($proc);
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        self::assertSame(0, proc_close($proc), $err);
        self::assertSame('[true,true,true,false,false,false,false]', $out, $err);
    }

    /** @return array<string, array{string}> */
    public function loaders(): array
    {
        $src = var_export(dirname(__DIR__, 2) . '/src/', true);
        return [
            'plain require' => [''],
            'PSR-4 autoloader' => ['spl_autoload_register(function ($c) { if (str_starts_with($c, "Herald\\\\")) {'
                . ' require ' . $src . ' . str_replace("\\\\", "/", substr($c, 7)) . ".php"; } });'],
        ];
    }

    public function testPublishChannel(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"delivered":3}');

        self::assertSame(3, herald_publish_channel('team:12', 'deploy', ['v' => 3]));
        self::assertSame('{"channel":"team:12","event":"deploy","data":{"v":3}}', $this->fake->request()['stdin']);
        self::assertSame([], $this->logLines());
    }

    public function testPublishChannelFailuresAreOneLogLineEach(): void
    {
        $this->fake->queueAnswer(400, '{"ok":false,"error":"channel: not a valid name"}');

        self::assertFalse(herald_publish_channel('team 12', 'e'));
        self::assertFalse(herald_publish_channel('team:12', ''));
        self::assertFalse(herald_publish_channel('team:12', 'e', 1));
        self::assertSame([
            'herald: publish failed: a channel name may only contain A-Z a-z 0-9 _ - . : @ / = +, got 0x20 at byte 4',
            'herald: publish failed: event must be a UTF-8 string of 1 to 200 bytes without control characters',
            'herald: publish failed: HTTP 400: channel: not a valid name',
        ], $this->logLines());
        self::assertCount(1, $this->fake->connects);
    }

    public function testPresence(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"channel":"room:1","members":'
            . '[{"user":"42","info":{"name":"Ann"},"connections":2}]}');

        self::assertSame(
            [['user' => '42', 'info' => ['name' => 'Ann'], 'connections' => 2]],
            herald_presence('room:1')
        );
        self::assertSame('channel=room%3A1', $this->fake->request()['params']['QUERY_STRING']);
        self::assertSame([], $this->logLines());
    }

    public function testPresenceFailuresAreOneLogLineEach(): void
    {
        $this->fake->queueAnswer(400, '{"ok":false,"error":"not a presence channel"}');
        $this->fake->queueAnswer(200, '{"ok":true,"members":"none"}');

        self::assertFalse(herald_presence('team:12'));
        self::assertFalse(herald_presence('team:12'));
        self::assertFalse(herald_presence(''));
        self::assertSame([
            'herald: presence failed: HTTP 400: not a presence channel',
            'herald: presence failed: unexpected answer from herald: "members" is not a list',
            'herald: presence failed: a channel name must be 1 to 128 bytes, got 0',
        ], $this->logLines());
    }

    public function testOnline(): void
    {
        $this->fake->queueAnswer(200, '{"ok":true,"user":"a b","online":true,"connections":2}');

        self::assertSame(['online' => true, 'connections' => 2], herald_online('a b'));
        self::assertSame('user=a%20b', $this->fake->request()['params']['QUERY_STRING']);
        self::assertSame([], $this->logLines());
    }

    public function testOnlineFailuresAreOneLogLineEach(): void
    {
        herald_configure(['socket' => sys_get_temp_dir() . '/herald-none-' . getmypid() . '.sock']);

        self::assertFalse(herald_online(42));
        self::assertFalse(herald_online(''));
        $lines = $this->logLines();
        self::assertCount(2, $lines);
        self::assertStringStartsWith('herald: presence failed: cannot connect to unix://', $lines[0]);
        self::assertSame('herald: presence failed: a user id must be 1 to 128 bytes, got 0', $lines[1]);
    }

    public function testChannelToken(): void
    {
        herald_configure(['secret' => 'test-secret']);

        $claims = Token::verify('test-secret', herald_channel_token(42, 'doc:7', 60), 0);
        self::assertSame(['42', 'doc:7'], [$claims['sub'], $claims['channel']]);
        self::assertSame($claims['iat'] + 60, $claims['exp']);
        self::assertSame([], $this->logLines());
    }

    public function testChannelTokenProgrammingErrorsThrow(): void
    {
        try {
            herald_channel_token('u', 'doc:7');
            self::fail('no exception without a secret');
        } catch (Exception $e) {
            self::assertStringContainsString('no secret configured', $e->getMessage());
        }
        herald_configure(['secret' => 'k']);
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('got "*" at byte 4');
        herald_channel_token('u', 'doc:*');
    }

    public function testRpcAnswerThatCannotBeGivenIsLoggedNotThrown(): void
    {
        $this->expectOutputString('');

        herald_rpc_error('NotFound', 'm');
        herald_rpc_error('x', 'm', 302);
        herald_rpc_reply(NAN);
        self::assertSame([
            'herald: rpc answer failed: an error code must be 1 to 64 bytes of a-z 0-9 _ . -, got "NotFound"',
            'herald: rpc answer failed: an error status must be 400 to 599, got 302',
            'herald: rpc answer failed: data cannot be encoded as JSON: Inf and NaN cannot be JSON encoded',
        ], $this->logLines());
    }
}
