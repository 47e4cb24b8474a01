<?php

/**
 * RpcTest.php -- Herald\Rpc in this process: checking a request's signature
 * and time, and refusing a bad answer before anything is printed.
 *
 * SIGNATURE is the lowercase hex HMAC-SHA256 of BODY (the example body of
 * docs/protocol.md section 3) with "test-secret", computed independently with
 * Python's hmac module; the daemon's RPC tests may use the same vector.
 * What a script actually sends (status, Content-Type, body) is checked under
 * a real php-fpm in RpcScriptTest.php.
 */

declare(strict_types=1);

namespace Herald\Tests\Unit;

use Herald\Exception;
use Herald\Rpc;
use PHPUnit\Framework\TestCase;

final class RpcTest extends TestCase
{
    private const BODY = '{"type":"rpc","method":"tasks.list","user":"42","connection":"1f00000000000a3",'
        . '"data":{"done":false},"time":1795312800}';
    private const SIGNATURE = '820f71c3d77776a704ee720225bc51274f192f777129da7e61abe2d246651b52';
    private const NOW = 1795312800;

    /**
     * A body and its signature with the secret "k".
     *
     * @return array{0: string, 1: string}
     */
    private static function signed(string $body): array
    {
        return [$body, hash_hmac('sha256', $body, 'k')];
    }

    private static function assertRefused(string $message, string $body, ?string $signature, string $secret = 'k'): void
    {
        try {
            Rpc::request($secret, $body, $signature, self::NOW);
            self::fail("accepted; expected \"$message\"");
        } catch (Exception $e) {
            self::assertStringContainsString($message, $e->getMessage());
        }
    }

    public function testKnownAnswer(): void
    {
        self::assertSame(self::SIGNATURE, hash_hmac('sha256', self::BODY, 'test-secret'));
        self::assertSame([
            'type' => 'rpc',
            'method' => 'tasks.list',
            'user' => '42',
            'connection' => '1f00000000000a3',
            'data' => ['done' => false],
            'time' => 1795312800,
        ], Rpc::request('test-secret', self::BODY, self::SIGNATURE, self::NOW));
    }

    public function testDefaultsToNow(): void
    {
        [$body, $signature] = self::signed('{"type":"connect","user":null,"time":' . time() . '}');

        self::assertNull(Rpc::request('k', $body, $signature)['user']);
    }

    /**
     * @dataProvider tamperedBodies
     */
    public function testTamperedBody(string $body): void
    {
        self::assertRefused('does not match', $body, self::SIGNATURE, 'test-secret');
    }

    /** @return array<string, array{string}> */
    public function tamperedBodies(): array
    {
        return [
            'another user' => [str_replace('"42"', '"43"', self::BODY)],
            'another method' => [str_replace('tasks.list', 'tasks.drop', self::BODY)],
            'a space added' => [self::BODY . ' '],
            'last byte cut' => [substr(self::BODY, 0, -1)],
            'reformatted' => [json_encode(json_decode(self::BODY), JSON_PRETTY_PRINT)],
            'empty' => [''],
        ];
    }

    public function testWrongSecret(): void
    {
        self::assertRefused('does not match', self::BODY, self::SIGNATURE, 'test-secreT');
        self::assertRefused('does not match', self::BODY, self::SIGNATURE, 'test-secret ');
    }

    /**
     * @dataProvider malformedSignatures
     */
    public function testMalformedSignature(?string $signature, string $message): void
    {
        self::assertRefused($message, self::BODY, $signature, 'test-secret');
    }

    /** @return array<string, array{?string, string}> */
    public function malformedSignatures(): array
    {
        return [
            'missing' => [null, 'no HERALD_SIGNATURE'],
            'empty' => ['', 'no HERALD_SIGNATURE'],
            'upper case hex' => [strtoupper(self::SIGNATURE), 'does not match'],
            'truncated' => [substr(self::SIGNATURE, 0, 63), 'does not match'],
            'one more byte' => [self::SIGNATURE . '0', 'does not match'],
            'raw bytes' => [hash_hmac('sha256', self::BODY, 'test-secret', true), 'does not match'],
            'base64' => [base64_encode(hash_hmac('sha256', self::BODY, 'test-secret', true)), 'does not match'],
            'sha1' => [hash_hmac('sha1', self::BODY, 'test-secret'), 'does not match'],
        ];
    }

    public function testSignatureIsCheckedBeforeTheBodyIsParsed(): void
    {
        self::assertRefused('does not match', 'not JSON', hash_hmac('sha256', 'not JSON', 'other'));
        self::assertRefused('no HERALD_SIGNATURE', '[1]', null);
    }

    /**
     * @dataProvider badBodies
     */
    public function testBadBodiesEvenWhenSigned(string $body, string $message): void
    {
        [$body, $signature] = self::signed($body);
        self::assertRefused($message, $body, $signature);
    }

    /** @return array<string, array{string, string}> */
    public function badBodies(): array
    {
        $t = self::NOW;
        return [
            'not JSON' => ['{"time":' . $t, 'the body is not JSON: Syntax error'],
            'empty' => ['', 'the body is not JSON'],
            'a list' => ["[$t]", 'not a JSON object'],
            'a list after spaces' => [" \n [{\"time\":$t}]", 'not a JSON object'],
            'a number' => ["$t", 'not a JSON object'],
            'a string' => ['"x"', 'not a JSON object'],
            'null' => ['null', 'not a JSON object'],
            'no time' => ['{"type":"rpc"}', 'no integer "time"'],
            'empty object' => ['{}', 'no integer "time"'],
            'time a string' => ["{\"time\":\"$t\"}", 'no integer "time"'],
            'time a float' => ["{\"time\":$t.5}", 'no integer "time"'],
            'time null' => ['{"time":null}', 'no integer "time"'],
            'too deep' => [str_repeat('[', 600) . str_repeat(']', 600), 'the body is not JSON'],
        ];
    }

    /**
     * @dataProvider times
     */
    public function testTimeWindow(int $offset, bool $accepted): void
    {
        [$body, $signature] = self::signed('{"type":"rpc","time":' . (self::NOW + $offset) . '}');
        try {
            $request = Rpc::request('k', $body, $signature, self::NOW);
            self::assertTrue($accepted, "accepted at $offset s");
            self::assertSame(self::NOW + $offset, $request['time']);
        } catch (Exception $e) {
            self::assertFalse($accepted, "refused at $offset s: " . $e->getMessage());
            self::assertStringContainsString(sprintf('time is %d s off', -$offset), $e->getMessage());
        }
    }

    /** @return array<string, array{int, bool}> */
    public function times(): array
    {
        return [
            'now' => [0, true],
            '60 s old' => [-60, true],
            '60 s ahead' => [60, true],
            '61 s old' => [-61, false],
            '61 s ahead' => [61, false],
            'a day old' => [-86400, false],
            'zero' => [-self::NOW, false],
        ];
    }

    public function testEmptySecret(): void
    {
        self::assertRefused('the secret is empty', self::BODY, hash_hmac('sha256', self::BODY, ''), '');
    }

    /**
     * @dataProvider invalidErrors
     */
    public function testInvalidErrorIsRefusedBeforeAnyOutput(string $code, int $status, string $message): void
    {
        $this->expectOutputString('');
        try {
            Rpc::error($code, 'text', $status);
            self::fail('no exception');
        } catch (Exception $e) {
            self::assertStringContainsString($message, $e->getMessage());
        }
    }

    /** @return array<string, array{string, int, string}> */
    public function invalidErrors(): array
    {
        $code = 'an error code must be 1 to 64 bytes of a-z 0-9 _ . -, got ';
        return [
            'empty code' => ['', 400, $code . '""'],
            '65 bytes' => [str_repeat('e', 65), 400, $code . '"' . str_repeat('e', 65) . '"'],
            'upper case' => ['Not_found', 400, $code . '"Not_found"'],
            'space' => ['not found', 400, $code],
            'colon' => ['app:error', 400, $code],
            'slash' => ['a/b', 400, $code . '"a/b"'],
            'newline at the end' => ["not_found\n", 400, $code],
            'UTF-8' => ['café', 400, $code . '"café"'],
            'not UTF-8' => ["caf\xe9", 400, $code . "\"caf\u{fffd}\""],
            'status 200' => ['x', 200, 'an error status must be 400 to 599, got 200'],
            'status 399' => ['x', 399, 'got 399'],
            'status 600' => ['x', 600, 'got 600'],
        ];
    }

    public function testUnencodableReplyIsRefusedBeforeAnyOutput(): void
    {
        $this->expectOutputString('');
        try {
            Rpc::reply(['x' => NAN]);
            self::fail('no exception');
        } catch (Exception $e) {
            self::assertSame('data cannot be encoded as JSON: Inf and NaN cannot be JSON encoded', $e->getMessage());
        }
    }

    public function testReplyWithInvalidUtf8IsRefused(): void
    {
        $this->expectOutputString('');
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('data cannot be encoded as JSON: Malformed UTF-8');
        Rpc::reply(["caf\xe9"]);
    }
}
