<?php

/**
 * TokenTest.php -- HS256 token signing against known answers, and channel
 * names as the daemon's chan.c accepts them.
 *
 * KNOWN_ANSWER is also in the daemon's tests/unit/test_tok.c, which verifies
 * it (sub "42", exp 1700003600) at now = 1700000001: change both or neither.
 * CHANNEL_KNOWN_ANSWER (sub "42", channel "team:12", same times and secret)
 * was computed independently with Python's hmac and base64 modules; the
 * daemon's channel-token tests may use it too.
 */

declare(strict_types=1);

namespace Herald\Tests\Unit;

use Herald\Exception;
use Herald\Token;
use PHPUnit\Framework\TestCase;

final class TokenTest extends TestCase
{
    private const KNOWN_ANSWER = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9'
        . '.eyJzdWIiOiI0MiIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ'
        . '.G4mieqaE7BMTnnEZPQKNYzSBHAo-7en-8ogbyDdi4mc';

    private const CHANNEL_KNOWN_ANSWER = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9'
        . '.eyJzdWIiOiI0MiIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwLCJjaGFubmVsIjoidGVhbToxMiJ9'
        . '.Wj8a_SgG1p3Opo8MdH-__eGgdSL-Zp5ALk65onoh9jM';

    public function testKnownAnswer(): void
    {
        self::assertSame(self::KNOWN_ANSWER, Token::sign('test-secret', '42', 3600, [], 1700000000));
        self::assertSame(self::KNOWN_ANSWER, Token::sign('test-secret', 42, 3600, [], 1700000000));
    }

    public function testKnownAnswerParts(): void
    {
        [$header, $claims, $signature] = explode('.', self::KNOWN_ANSWER);

        self::assertSame('{"alg":"HS256","typ":"JWT"}', base64_decode(strtr($header, '-_', '+/')));
        self::assertSame('{"sub":"42","iat":1700000000,"exp":1700003600}', base64_decode(strtr($claims, '-_', '+/')));
        self::assertSame(
            hash_hmac('sha256', "$header.$claims", 'test-secret', true),
            base64_decode(strtr($signature, '-_', '+/'))
        );
    }

    public function testKnownAnswerVerifies(): void
    {
        $claims = Token::verify('test-secret', self::KNOWN_ANSWER, 30, 1700000001);

        self::assertSame(['sub' => '42', 'iat' => 1700000000, 'exp' => 1700003600], $claims);
    }

    public function testExtraClaims(): void
    {
        $token = Token::sign('k', 'u', 60, ['room' => 'a/b', 'name' => 'Zoë', 'n' => [1, 2]], 1000);
        $json = base64_decode(strtr(explode('.', $token)[1], '-_', '+/'));

        self::assertSame('{"sub":"u","iat":1000,"exp":1060,"room":"a/b","name":"Zoë","n":[1,2]}', $json);
    }

    public function testExtraClaimsMaySetExpButNotSub(): void
    {
        $token = Token::sign('k', 'u', 60, ['exp' => 5000, 'nbf' => 900], 1000);
        self::assertSame(5000, Token::verify('k', $token, 0, 1000)['exp']);

        $this->expectException(Exception::class);
        $this->expectExceptionMessage('"sub"');
        Token::sign('k', 'u', 60, ['sub' => 'admin']);
    }

    public function testAConnectionTokenCannotCarryAChannelClaim(): void
    {
        // The daemon refuses a token with "channel" as a connection token: never mint one.
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('"channel"');
        Token::sign('k', 'u', 60, ['channel' => 'team:12']);
    }

    public function testBase64urlWithoutPadding(): void
    {
        // user ids of every length mod 3, and bytes that are '+' and '/' in standard base64
        foreach (['1', '12', '123', '>>>', '???', 'ü', str_repeat('x', 128)] as $id) {
            $token = Token::sign('secret', $id, 3600, ['x' => "\u{fbff}\u{ff}?>"], 1700000000);
            self::assertMatchesRegularExpression('/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/D', $token);
            self::assertSame((string) $id, Token::verify('secret', $token, 0, 1700000000)['sub']);
        }
    }

    public function testDefaultsToNow(): void
    {
        $before = time();
        $claims = Token::verify('k', Token::sign('k', 7), 0);

        self::assertGreaterThanOrEqual($before, $claims['iat']);
        self::assertSame($claims['iat'] + 3600, $claims['exp']);
        self::assertSame('7', $claims['sub']);
    }

    /**
     * @dataProvider invalidUserIds
     */
    public function testInvalidUserIds(string $userId, string $message): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage($message);
        Token::sign('k', $userId);
    }

    /** @return array<string, array{string, string}> */
    public function invalidUserIds(): array
    {
        return [
            'empty' => ['', '1 to 128 bytes, got 0'],
            '129 bytes' => [str_repeat('x', 129), '1 to 128 bytes, got 129'],
            '65 two-byte characters' => [str_repeat('é', 65), 'got 130'],
            'newline' => ["a\nb", 'control characters'],
            'NUL' => ["a\0", 'control characters'],
            'unit separator' => ["\x1f", 'control characters'],
            'DEL' => ["a\x7f", 'control characters'],
            'not UTF-8' => ["caf\xe9", 'UTF-8'],
        ];
    }

    public function testUserIdLimits(): void
    {
        self::assertSame(str_repeat('x', 128), Token::userId(str_repeat('x', 128)));
        self::assertSame(str_repeat('é', 64), Token::userId(str_repeat('é', 64)));
        self::assertSame('-5', Token::userId(-5));
        self::assertSame('a b', Token::userId('a b')); // spaces are not control characters
        $this->expectException(Exception::class);
        Token::userId(4.2);
    }

    public function testEmptySecretRefused(): void
    {
        $this->expectException(Exception::class);
        Token::sign('', 'u');
    }

    public function testTtlMustBePositive(): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('ttl');
        Token::sign('k', 'u', 0);
    }

    public function testClaimsThatAreNotJson(): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('JSON');
        Token::sign('k', 'u', 60, ['bad' => "\xff"]);
    }

    /**
     * @dataProvider refusedTokens
     */
    public function testVerifyRefuses(string $token, string $reason): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage("token: $reason");
        Token::verify('test-secret', $token, 30, 1700000001);
    }

    /** @return array<string, array{string, string}> */
    public function refusedTokens(): array
    {
        $k = self::KNOWN_ANSWER;
        [$h, $c] = explode('.', $k);
        $none = rtrim(strtr(base64_encode('{"alg":"none"}'), '+/', '-_'), '=');
        return [
            'two parts' => ["$h.$c", 'format'],
            'four parts' => ["$k.", 'format'],
            'padding' => [$k . '=', 'format'],
            'standard alphabet' => [strtr($k, '-', '+'), 'format'],
            'alg none' => ["$none.$c.", 'alg'],
            'wrong secret' => [Token::sign('other', '42', 3600, [], 1700000000), 'signature'],
            'truncated signature' => [substr($k, 0, -1), 'signature'],
            'expired' => [Token::sign('test-secret', '42', 10, [], 1699990000), 'expired'],
            'not yet' => [Token::sign('test-secret', '42', 3600, ['nbf' => 1700000100], 1700000000), 'not_yet'],
            'exp not a number' => [Token::sign('test-secret', '42', 3600, ['exp' => 'soon'], 1700000000), 'format'],
        ];
    }

    public function testChannelKnownAnswer(): void
    {
        self::assertSame(
            self::CHANNEL_KNOWN_ANSWER,
            Token::signChannel('test-secret', '42', 'team:12', 3600, 1700000000)
        );
        self::assertSame(
            self::CHANNEL_KNOWN_ANSWER,
            Token::signChannel('test-secret', 42, 'team:12', 3600, 1700000000)
        );

        [$header, $claims, $signature] = explode('.', self::CHANNEL_KNOWN_ANSWER);
        self::assertSame('{"alg":"HS256","typ":"JWT"}', base64_decode(strtr($header, '-_', '+/')));
        self::assertSame(
            '{"sub":"42","iat":1700000000,"exp":1700003600,"channel":"team:12"}',
            base64_decode(strtr($claims, '-_', '+/'))
        );
        self::assertSame(
            hash_hmac('sha256', "$header.$claims", 'test-secret', true),
            base64_decode(strtr($signature, '-_', '+/'))
        );
    }

    public function testChannelKnownAnswerVerifies(): void
    {
        self::assertSame(
            ['sub' => '42', 'iat' => 1700000000, 'exp' => 1700003600, 'channel' => 'team:12'],
            Token::verify('test-secret', self::CHANNEL_KNOWN_ANSWER, 30, 1700000001)
        );
    }

    public function testChannelTokenExpiresAndIsBoundToItsSecret(): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('token: expired');
        Token::verify('test-secret', self::CHANNEL_KNOWN_ANSWER, 0, 1700003600);
    }

    public function testChannelTokenWrongSecret(): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('token: signature');
        Token::verify('test-secreT', self::CHANNEL_KNOWN_ANSWER, 30, 1700000001);
    }

    public function testChannelTokenValidatesItsArguments(): void
    {
        foreach ([['', 'u', 'c', 1, 'the secret is empty'], ['k', '', 'c', 1, 'user id'],
                  ['k', 'u', 'c*', 1, 'got "*" at byte 1'], ['k', 'u', 'c', 0, 'ttl']] as [$k, $u, $c, $ttl, $msg]) {
            try {
                Token::signChannel($k, $u, $c, $ttl, 1000);
                self::fail("no exception for $msg");
            } catch (Exception $e) {
                self::assertStringContainsString($msg, $e->getMessage());
            }
        }
    }

    /**
     * @dataProvider validChannels
     */
    public function testValidChannelNames(string $name): void
    {
        self::assertSame($name, Token::channel($name));
    }

    /** @return array<string, array{string}> */
    public function validChannels(): array
    {
        return [
            'one byte' => ['a'],
            '128 bytes' => [str_repeat('Z', 128)],
            'every allowed character' => ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:@/=+'],
            'examples from the protocol' => ['team:12'],
            'path-like' => ['orders/eu'],
            'starts with punctuation' => ['-'],
        ];
    }

    public function testEveryByteOutsideTheSetIsRefused(): void
    {
        $allowed = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:@/=+';
        $accepted = '';
        for ($b = 0; $b < 256; $b++) {
            try {
                Token::channel('ab' . chr($b) . 'c');
                $accepted .= chr($b);
            } catch (Exception $e) {
                self::assertStringEndsWith('at byte 2', $e->getMessage(), sprintf('byte 0x%02x', $b));
            }
        }
        self::assertSame(count_chars($allowed, 3), count_chars($accepted, 3));
        self::assertSame(strlen($allowed), strlen($accepted));
    }

    public function testChannelNameLength(): void
    {
        try {
            Token::channel(str_repeat('a', 129));
            self::fail('no exception');
        } catch (Exception $e) {
            self::assertSame('a channel name must be 1 to 128 bytes, got 129', $e->getMessage());
        }
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('a channel name must be 1 to 128 bytes, got 0');
        Token::channel('');
    }
}
