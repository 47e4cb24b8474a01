<?php

/**
 * Token.php -- HS256 connection tokens (compact JWS) for Herald's WebSocket.
 *
 * sign() produces exactly what the daemon's tok.c accepts: the header
 * {"alg":"HS256","typ":"JWT"}, claims {"sub": "<user id>", "iat", "exp", ...}
 * as compact JSON (slashes and Unicode unescaped), each part in base64url
 * without padding, and an HMAC-SHA256 over "header.claims". The same
 * known-answer vector is checked by tests/Unit/TokenTest.php here and by
 * tests/unit/test_tok.c in the daemon.
 *
 * signChannel() makes a channel token: the same format with one more claim,
 * "channel", which a connection sends in {"op":"subscribe","token":...} to
 * join a channel its connection token does not grant. The daemon requires its
 * "sub" to equal the connection's user and its "channel" to equal the channel.
 * The "channel" claim is what tells the two kinds apart: the daemon refuses a
 * channel token as a connection token (401 bad_token) and a token without it
 * as a channel token, so sign() never puts one in a connection token.
 *
 * verify() mirrors the daemon's checks, for tests and tools; the signature is
 * compared with hash_equals, never with ===.
 */

declare(strict_types=1);

namespace Herald;

final class Token
{
    private const HEADER = '{"alg":"HS256","typ":"JWT"}';
    private const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;
    private const MAX_USER = 128;
    private const MAX_CHANNEL = 128;

    /**
     * Sign a token for one user.
     *
     * @param string               $secret the daemon's secret (HERALD_SECRET)
     * @param string|int           $userId the user id; an int is sent as its decimal string
     * @param int                  $ttl    seconds until the token expires (at least 1)
     * @param array<string, mixed> $claims extra claims; they may set anything but "sub" and
     *                                     "channel" (which makes a channel token: signChannel())
     * @param int|null             $now    the issue time (default: time())
     *
     * @return string the compact token "header.claims.signature"
     *
     * @throws Exception when the secret is empty, the user id or ttl is invalid, the
     *                   claims set "sub" or "channel" or cannot be encoded as JSON
     */
    public static function sign(
        string $secret,
        string|int $userId,
        int $ttl = 3600,
        array $claims = [],
        ?int $now = null
    ): string {
        if (array_key_exists('sub', $claims)) {
            throw new Exception('claims may not set "sub": pass the user id instead');
        }
        if (array_key_exists('channel', $claims)) {
            throw new Exception('claims may not set "channel": Herald refuses a channel token as a '
                . 'connection token; make one with signChannel()');
        }
        return self::signClaims($secret, $userId, $ttl, $claims, $now);
    }

    /**
     * Sign a channel token: claims "sub", "iat", "exp" and "channel".
     *
     * @param string     $secret  the daemon's secret (HERALD_SECRET)
     * @param string|int $userId  the user the connection belongs to
     * @param string     $channel the one channel it grants, a valid name (not a pattern)
     * @param int        $ttl     seconds until the token expires (at least 1)
     * @param int|null   $now     the issue time (default: time())
     *
     * @return string the compact token "header.claims.signature"
     *
     * @throws Exception when the secret is empty or an argument is invalid
     */
    public static function signChannel(
        string $secret,
        string|int $userId,
        string $channel,
        int $ttl = 3600,
        ?int $now = null
    ): string {
        return self::signClaims($secret, $userId, $ttl, ['channel' => self::channel($channel)], $now);
    }

    /**
     * Sign "sub", "iat", "exp" and the given claims (checked by the caller).
     *
     * @param array<string, mixed> $claims
     *
     * @throws Exception when the secret is empty, the user id or ttl is invalid, or the
     *                   claims cannot be encoded as JSON
     */
    private static function signClaims(string $secret, string|int $userId, int $ttl, array $claims, ?int $now): string
    {
        if ($secret === '') {
            throw new Exception('the secret is empty');
        }
        if ($ttl < 1) {
            throw new Exception("ttl must be at least 1 second, got $ttl");
        }
        $now ??= time();
        $payload = ['sub' => self::userId($userId), 'iat' => $now, 'exp' => $now + $ttl];
        foreach ($claims as $name => $value) {
            $payload[$name] = $value;
        }
        try {
            $json = json_encode($payload, self::JSON_FLAGS);
        } catch (\JsonException $e) {
            throw new Exception('claims cannot be encoded as JSON: ' . $e->getMessage(), 0, $e);
        }
        $input = self::base64url(self::HEADER) . '.' . self::base64url($json);
        return $input . '.' . self::base64url(hash_hmac('sha256', $input, $secret, true));
    }

    /**
     * Verify a token the way the daemon does and return its claims.
     *
     * @param string   $secret the secret it must be signed with
     * @param string   $token  the compact token
     * @param int      $leeway seconds of tolerance on exp and nbf
     * @param int|null $now    the current time (default: time())
     *
     * @return array<string, mixed> the claims, with "sub" as a string
     *
     * @throws Exception naming the first check that failed
     */
    public static function verify(string $secret, string $token, int $leeway = 30, ?int $now = null): array
    {
        $parts = explode('.', $token);
        if (count($parts) !== 3 || !preg_match('/^[A-Za-z0-9_-]*+$/D', implode('', $parts))) {
            throw new Exception('token: format');
        }
        $header = self::decodeObject($parts[0]);
        if (($header['alg'] ?? null) !== 'HS256') {
            throw new Exception('token: alg');
        }
        $mac = self::base64url(hash_hmac('sha256', $parts[0] . '.' . $parts[1], $secret, true));
        if ($secret === '' || !hash_equals($mac, $parts[2])) {
            throw new Exception('token: signature');
        }
        $claims = self::decodeObject($parts[1]);
        $now ??= time();
        foreach (['exp', 'nbf'] as $name) {
            if (array_key_exists($name, $claims) && !is_int($claims[$name]) && !is_float($claims[$name])) {
                throw new Exception('token: format');
            }
        }
        if (isset($claims['exp']) && $now >= $claims['exp'] + $leeway) {
            throw new Exception('token: expired');
        }
        if (isset($claims['nbf']) && $now < $claims['nbf'] - $leeway) {
            throw new Exception('token: not_yet');
        }
        try {
            $claims['sub'] = self::userId($claims['sub'] ?? null);
        } catch (Exception $e) {
            throw new Exception('token: subject', 0, $e);
        }
        return $claims;
    }

    /**
     * Check a user id and return it as the string Herald uses.
     *
     * Valid ids are ints, or strings of 1 to 128 bytes of UTF-8 without control
     * characters (U+0000..U+001F, U+007F). Shared with Client.
     *
     * @internal
     *
     * @param mixed $userId the candidate
     *
     * @return string
     *
     * @throws Exception when the id is not valid
     */
    public static function userId(mixed $userId): string
    {
        if (is_int($userId)) {
            return (string) $userId;
        }
        if (!is_string($userId)) {
            throw new Exception('a user id must be a string or an int, got ' . get_debug_type($userId));
        }
        $length = strlen($userId);
        if ($length < 1 || $length > self::MAX_USER) {
            throw new Exception("a user id must be 1 to 128 bytes, got $length");
        }
        if (!preg_match('/^[^\x00-\x1f\x7f]*$/D', $userId)) {
            throw new Exception('a user id may not contain control characters');
        }
        if (!preg_match('//u', $userId)) {
            throw new Exception('a user id must be valid UTF-8');
        }
        return $userId;
    }

    /**
     * Check a channel name the way the daemon does (chan.c) and return it.
     *
     * Valid names are 1 to 128 bytes of A-Z a-z 0-9 and _ - . : @ / = +.
     * Shared with Client.
     *
     * @internal
     *
     * @param string $channel the candidate
     *
     * @return string
     *
     * @throws Exception when the name is not valid, naming the first bad byte
     */
    public static function channel(string $channel): string
    {
        $length = strlen($channel);
        if ($length < 1 || $length > self::MAX_CHANNEL) {
            throw new Exception("a channel name must be 1 to 128 bytes, got $length");
        }
        if (preg_match('~[^A-Za-z0-9_.:@/=+-]~', $channel, $m, PREG_OFFSET_CAPTURE)) {
            $byte = $m[0][0];
            $shown = ord($byte) > 0x20 && ord($byte) < 0x7f ? "\"$byte\"" : sprintf('0x%02x', ord($byte));
            throw new Exception(
                "a channel name may only contain A-Z a-z 0-9 _ - . : @ / = +, got $shown at byte {$m[0][1]}"
            );
        }
        return $channel;
    }

    /** base64url without padding (RFC 7515). */
    private static function base64url(string $bytes): string
    {
        return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
    }

    /**
     * Decode one part as a JSON object; refuses non-canonical base64url.
     *
     * @return array<string, mixed>
     */
    private static function decodeObject(string $part): array
    {
        $bytes = base64_decode(strtr($part, '-_', '+/'), true);
        if ($bytes === false || self::base64url($bytes) !== $part) {
            throw new Exception('token: format');
        }
        $value = json_decode($bytes, false, 64, JSON_BIGINT_AS_STRING);
        if (!$value instanceof \stdClass) {
            throw new Exception('token: format');
        }
        return json_decode($bytes, true, 64, JSON_BIGINT_AS_STRING);
    }
}
