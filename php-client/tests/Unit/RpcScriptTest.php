<?php

/**
 * RpcScriptTest.php -- herald_rpc_request(), herald_rpc_reply() and
 * herald_rpc_error() in an RPC script run by a real php-fpm, called the way
 * Herald calls it (docs/protocol.md section 3): the status line, the
 * Content-Type and the exact body php-fpm sends back, and the one error_log
 * line each failure writes. The secret comes from the pool's environment
 * (HERALD_SECRET), as it would on a site that sets it there.
 *
 * Needs php-fpm (`make deps` installs it); without it these tests are
 * skipped, and say so.
 */

declare(strict_types=1);

namespace Herald\Tests\Unit;

use Herald\Tests\Support\PhpFpm;
use PHPUnit\Framework\TestCase;

final class RpcScriptTest extends TestCase
{
    private static ?PhpFpm $fpm = null;

    /** The script most tests run: check the request, then reply with what it said. */
    private const ECHO_SCRIPT = '$r = herald_rpc_request(); if ($r !== null) { herald_rpc_reply($r); }';

    public static function setUpBeforeClass(): void
    {
        $binary = PhpFpm::binary();
        if ($binary !== null) {
            self::$fpm = new PhpFpm($binary);
        }
    }

    public static function tearDownAfterClass(): void
    {
        self::$fpm?->stop();
        self::$fpm = null;
    }

    protected function setUp(): void
    {
        if (self::$fpm === null) {
            self::markTestSkipped('php-fpm is not installed (make deps installs it)');
        }
    }

    /** A request body at the current time, with the given members. */
    private static function body(array $fields = []): string
    {
        return json_encode($fields + ['type' => 'rpc', 'method' => 'tasks.list', 'user' => '42',
            'connection' => '1f00000000000a3', 'data' => ['done' => false], 'time' => time()]);
    }

    /**
     * Run a script for one request signed with $secret (null: no HERALD_SIGNATURE).
     *
     * @return array{status: int, headers: array<string, string>, body: string, log: list<string>}
     */
    private static function call(string $code, string $body, ?string $secret = PhpFpm::SECRET): array
    {
        $params = $secret === null ? [] : ['HERALD_SIGNATURE' => hash_hmac('sha256', $body, $secret)];
        return self::$fpm->run($code, $body, $params);
    }

    public function testSignedRequestIsReturnedAndRepliedTo(): void
    {
        $body = self::body(['data' => ['title' => 'Zoë a/b', 'n' => [1, 2.5, null]]]);

        $r = self::call(self::ECHO_SCRIPT, $body);

        self::assertSame(200, $r['status']);
        self::assertSame('application/json', $r['headers']['content-type']);
        self::assertSame(json_decode($body, true), json_decode($r['body'], true));
        self::assertStringContainsString('{"title":"Zoë a/b","n":[1,2.5,null]}', $r['body']);
        self::assertSame([], $r['log']);
    }

    /**
     * @dataProvider replies
     */
    public function testReplyBody(string $data, string $expected): void
    {
        $r = self::call("herald_rpc_request(); herald_rpc_reply($data);", self::body());

        self::assertSame([200, 'application/json', $expected, []], [
            $r['status'], $r['headers']['content-type'] ?? null, $r['body'], $r['log'],
        ]);
    }

    /** @return array<string, array{string, string}> */
    public function replies(): array
    {
        return [
            'null' => ['null', 'null'],
            'true (the subscribe hook allows)' => ['true', 'true'],
            'allow object' => ["['allow' => true]", '{"allow":true}'],
            'a string' => ["'ok'", '"ok"'],
            'a number' => ['3', '3'],
            'a list' => ["[['id' => 1, 'title' => 'Call Bob']]", '[{"id":1,"title":"Call Bob"}]'],
            'an empty array is a list' => ['[]', '[]'],
            'an empty object' => ['new stdClass()', '{}'],
            'slashes and UTF-8 unescaped' => ["['u' => 'a/b é \u{1F600}']", "{\"u\":\"a/b é \u{1F600}\"}"],
        ];
    }

    public function testErrorWithDefaultStatus(): void
    {
        $r = self::call("herald_rpc_request(); herald_rpc_error('not_found', 'no task 7');", self::body());

        self::assertSame(400, $r['status']);
        self::assertSame('application/json', $r['headers']['content-type']);
        self::assertSame('{"code":"not_found","message":"no task 7"}', $r['body']);
        self::assertSame([], $r['log']);
    }

    /**
     * @dataProvider errors
     */
    public function testErrorCodesAndStatuses(string $args, int $status, string $expected): void
    {
        $r = self::call("herald_rpc_request(); herald_rpc_error($args);", self::body());

        self::assertSame([$status, 'application/json', $expected, []], [
            $r['status'], $r['headers']['content-type'] ?? null, $r['body'], $r['log'],
        ]);
    }

    /** @return array<string, array{string, int, string}> */
    public function errors(): array
    {
        $c64 = str_repeat('z', 64);
        return [
            '404' => ["'gone', 'it is gone', 404", 404, '{"code":"gone","message":"it is gone"}'],
            '599' => ["'x', 'y', 599", 599, '{"code":"x","message":"y"}'],
            '64-byte code' => ["'$c64', 'm'", 400, "{\"code\":\"$c64\",\"message\":\"m\"}"],
            'every code character' => ["'a-z.0_9', 'm'", 400, '{"code":"a-z.0_9","message":"m"}'],
            'message with quotes, slashes and UTF-8' => [
                "'bad', 'say \"no\" to a/b, Zoë'", 400, '{"code":"bad","message":"say \"no\" to a/b, Zoë"}',
            ],
            'message not UTF-8' => ["'bad', \"caf\\xe9\"", 400, "{\"code\":\"bad\",\"message\":\"caf\u{fffd}\"}"],
        ];
    }

    /**
     * @dataProvider forgedRequests
     */
    public function testRequestNotFromHeraldIsAnswered403(string $body, ?string $secret, string $logged): void
    {
        $r = self::call(self::ECHO_SCRIPT . ' echo $r === null ? "" : "not null";', $body, $secret);

        self::assertSame(403, $r['status']);
        self::assertSame('application/json', $r['headers']['content-type']);
        self::assertSame('{"code":"forbidden","message":"not a request from Herald"}', $r['body']);
        self::assertCount(1, $r['log'], implode("\n", $r['log']));
        self::assertStringStartsWith('herald: rpc request failed: ', $r['log'][0]);
        self::assertStringContainsString($logged, $r['log'][0]);
    }

    /** @return array<string, array{string, ?string, string}> */
    public function forgedRequests(): array
    {
        return [
            'no signature' => [self::body(), null, 'no HERALD_SIGNATURE'],
            'wrong secret' => [self::body(), 'another-secret', 'does not match'],
            'stale' => [self::body(['time' => time() - 120]), PhpFpm::SECRET, 's off'],
            'from the future' => [self::body(['time' => time() + 120]), PhpFpm::SECRET, 's off'],
            'not an object' => ['[1,2]', PhpFpm::SECRET, 'not a JSON object'],
        ];
    }

    public function testTamperedBodyIsAnswered403(): void
    {
        $body = self::body();
        $signature = hash_hmac('sha256', $body, PhpFpm::SECRET);
        $tampered = str_replace('"42"', '"43"', $body);

        $r = self::$fpm->run(self::ECHO_SCRIPT, $tampered, ['HERALD_SIGNATURE' => $signature]);
        self::assertSame(403, $r['status']);
        self::assertSame(
            ['herald: rpc request failed: HERALD_SIGNATURE does not match the body (another secret?)'],
            $r['log']
        );

        $r = self::$fpm->run(self::ECHO_SCRIPT, $body, ['HERALD_SIGNATURE' => $signature]);
        self::assertSame(200, $r['status'], 'the same signature with the untouched body');
    }

    public function testConfiguredSecretReplacesTheEnvironment(): void
    {
        $code = "herald_configure(['secret' => 'configured']);" . self::ECHO_SCRIPT;

        self::assertSame(200, self::call($code, self::body(), 'configured')['status']);
        self::assertSame(403, self::call($code, self::body(), PhpFpm::SECRET)['status']);
    }

    public function testNoSecretAtAllIsAnswered403(): void
    {
        $code = 'putenv("HERALD_SECRET"); ' . self::ECHO_SCRIPT;

        $r = self::call($code, self::body());
        self::assertSame(403, $r['status']);
        self::assertSame(
            ['herald: rpc request failed: no secret configured: pass the "secret" option or set HERALD_SECRET'],
            $r['log']
        );
    }

    /**
     * @dataProvider impossibleAnswers
     */
    public function testAnswerThatCannotBeGivenIs500AndOneLogLine(string $call, string $logged): void
    {
        $r = self::call("herald_rpc_request(); $call; echo '';", self::body());

        self::assertSame(500, $r['status']);
        self::assertSame('', $r['body']);
        self::assertSame(["herald: rpc answer failed: $logged"], $r['log']);
    }

    /** @return array<string, array{string, string}> */
    public function impossibleAnswers(): array
    {
        return [
            'data not JSON' => ["herald_rpc_reply(['x' => NAN])",
                'data cannot be encoded as JSON: Inf and NaN cannot be JSON encoded'],
            'bad code' => ["herald_rpc_error('Not Found', 'm')",
                'an error code must be 1 to 64 bytes of a-z 0-9 _ . -, got "Not Found"'],
            'status under 400' => ["herald_rpc_error('x', 'm', 200)", 'an error status must be 400 to 599, got 200'],
        ];
    }

    public function testOutputBeforeTheAnswerIsLoggedWithItsPlace(): void
    {
        $r = self::call("herald_rpc_request(); echo 'debug'; herald_rpc_error('nope', 'm', 404);", self::body());

        self::assertSame(200, $r['status'], 'too late for 404');
        self::assertSame('debug', $r['body'], 'and the error body is not appended to the stray output');
        self::assertCount(1, $r['log']);
        self::assertMatchesRegularExpression(
            '~^herald: rpc answer failed: cannot answer: output started at .*/script-\d+\.php:4 before the answer$~',
            $r['log'][0]
        );
    }
}
