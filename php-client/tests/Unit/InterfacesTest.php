<?php

/**
 * InterfacesTest.php -- what an application builds on: ClientInterface
 * (a fake stands in for Client in the code under test, and behind the
 * herald_* functions), TransportInterface (a custom transport under a real
 * Client), which exception each kind of answer gives, and herald.php loaded
 * twice and from two copies.
 */

declare(strict_types=1);

namespace Herald\Tests\Unit;

use Herald\ApiException;
use Herald\Client;
use Herald\ClientInterface;
use Herald\ConnectionException;
use Herald\Exception;
use Herald\ProtocolException;
use Herald\TransportInterface;
use PHPUnit\Framework\TestCase;

/** Code under test in an application: it only knows the interface. */
final class OrderNotifier
{
    public function __construct(private ClientInterface $herald)
    {
    }

    public function shipped(int $customer, int $order): bool
    {
        return $this->herald->publish($customer, 'order.shipped', ['order' => $order]) > 0;
    }
}

/** A fake client, as an application's test would write it. */
final class RecordingClient implements ClientInterface
{
    /** @var list<array{0: string, 1: list<mixed>}> */
    public array $calls = [];

    public function publish(string|int|array $users, string $event, mixed $data = null): int
    {
        $this->calls[] = ['publish', [$users, $event, $data]];
        return 1;
    }

    public function broadcast(string $event, mixed $data = null): int
    {
        $this->calls[] = ['broadcast', [$event, $data]];
        return 5;
    }

    public function publishChannel(string $channel, string $event, mixed $data = null): int
    {
        $this->calls[] = ['publishChannel', [$channel, $event, $data]];
        return 2;
    }

    public function publishBatch(array $messages): array
    {
        return array_fill(0, count($messages), 1);
    }

    public function token(string|int $userId, int $ttl = 3600, array $claims = []): string
    {
        return "token-$userId";
    }

    public function channelToken(string|int $userId, string $channel, int $ttl = 3600): string
    {
        return "token-$userId-$channel";
    }

    public function presence(string $channel): array
    {
        return [['user' => '1', 'info' => null, 'connections' => 1]];
    }

    public function online(string|int $userId): array
    {
        return ['online' => true, 'connections' => 1];
    }

    public function rpcRequest(string $body, ?string $signature, ?int $now = null): array
    {
        return ['type' => 'rpc'];
    }

    public function health(): array
    {
        return ['ok' => true];
    }

    public function stats(): array
    {
        throw new ConnectionException('down');
    }
}

/** A transport answering from a list and keeping what it was asked. */
final class CannedTransport implements TransportInterface
{
    /** @var list<array{0: string, 1: string, 2: string}> */
    public array $requests = [];

    /** @param list<array{status: int, headers: array<string, string>, body: string}> $answers */
    public function __construct(private array $answers)
    {
    }

    public function request(string $method, string $uri, string $body = ''): array
    {
        $this->requests[] = [$method, $uri, $body];
        return array_shift($this->answers) ?? throw new ConnectionException('no answer queued');
    }
}

final class InterfacesTest extends TestCase
{
    protected function tearDown(): void
    {
        herald_configure(['socket' => '/nonexistent/herald.sock']);
    }

    public function testAFakeClientStandsInForTheRealOne(): void
    {
        $fake = new RecordingClient();

        self::assertTrue((new OrderNotifier($fake))->shipped(42, 7));
        self::assertSame([['publish', [42, 'order.shipped', ['order' => 7]]]], $fake->calls);
        self::assertInstanceOf(ClientInterface::class, new Client());
    }

    public function testTheFunctionsUseAConfiguredClient(): void
    {
        $fake = new RecordingClient();
        herald_configure(['client' => $fake]);

        self::assertSame(1, herald_publish('u', 'e', 1));
        self::assertSame(5, herald_broadcast('b'));
        self::assertSame(2, herald_publish_channel('c', 'e'));
        self::assertSame('token-9', herald_token(9));
        self::assertSame(['online' => true, 'connections' => 1], herald_online('u'));
        self::assertSame([['publish', ['u', 'e', 1]], ['broadcast', ['b', null]], ['publishChannel', ['c', 'e', null]]],
            $fake->calls);
    }

    public function testClientOptionMustBeAClientAlone(): void
    {
        $log = tempnam(sys_get_temp_dir(), 'herald-log-');
        $saved = (string) ini_get('error_log');
        ini_set('error_log', $log);
        try {
            herald_configure(['client' => new RecordingClient()]);
            herald_configure(['client' => new \stdClass()]);
            herald_configure(['client' => new RecordingClient(), 'socket' => '/x.sock']);
            self::assertSame(1, herald_publish('u', 'e'), 'the first configuration was kept');
            $lines = array_map(fn ($l) => preg_replace('/^\[[^]]*\] /', '', $l), file($log, FILE_IGNORE_NEW_LINES));
            self::assertSame(array_fill(0, 2, 'herald: configure failed: option "client" must be a '
                . 'Herald\ClientInterface, given alone'), $lines);
        } finally {
            ini_set('error_log', $saved);
            unlink($log);
        }
    }

    public function testACustomTransportCarriesTheRequests(): void
    {
        $transport = new CannedTransport([
            ['status' => 200, 'headers' => [], 'body' => '{"ok":true,"delivered":4}'],
            ['status' => 200, 'headers' => [], 'body' => '{"ok":true,"online":false,"connections":0}'],
        ]);
        $client = new Client(['transport' => $transport, 'secret' => 's']);

        self::assertSame(4, $client->publish([1, 'b'], 'e', ['x' => 1]));
        self::assertSame(['online' => false, 'connections' => 0], $client->online('a b'));
        self::assertSame([
            ['POST', '/publish', '{"users":["1","b"],"event":"e","data":{"x":1}}'],
            ['GET', '/presence?user=a%20b', ''],
        ], $transport->requests);
        self::assertNotSame('', $client->token(1));
    }

    /**
     * @dataProvider transportClashes
     *
     * @param array<string, mixed> $options
     */
    public function testTransportOptionChecks(array $options, string $message): void
    {
        $this->expectException(Exception::class);
        $this->expectExceptionMessage($message);
        new Client($options);
    }

    /** @return array<string, array{array<string, mixed>, string}> */
    public function transportClashes(): array
    {
        $t = new CannedTransport([]);
        return [
            'not a transport' => [['transport' => 'unix:///x'], 'must be a Herald\TransportInterface, got string'],
            'with socket' => [['transport' => $t, 'socket' => '/x'], 'replaces "socket"'],
            'with persistent and timeout' => [['transport' => $t, 'persistent' => true, 'timeout' => 1],
                'replaces "timeout", "persistent"'],
        ];
    }

    /**
     * @dataProvider answers
     *
     * @param class-string<\Throwable> $class
     */
    public function testWhichExceptionEachAnswerGives(string $call, int $status, string $body, string $class,
                                                     string $message): void
    {
        $client = new Client(['transport' => new CannedTransport([
            ['status' => $status, 'headers' => [], 'body' => $body],
        ])]);
        try {
            match ($call) {
                'publish' => $client->publish('u', 'e'),
                'batch' => $client->publishBatch([['users' => 'u', 'event' => 'e']]),
                'presence' => $client->presence('room:1'),
                'online' => $client->online('u'),
                'health' => $client->health(),
            };
            self::fail('no exception');
        } catch (Exception $e) {
            self::assertSame($class, get_class($e));
            self::assertStringContainsString($message, $e->getMessage());
        }
    }

    /** @return array<string, array{string, int, string, string, string}> */
    public function answers(): array
    {
        $p = ProtocolException::class;
        $a = ApiException::class;
        return [
            'error status' => ['publish', 413, '{"ok":false,"error":"too big"}', $a, 'too big'],
            'error status, body not JSON' => ['publish', 502, 'Bad Gateway', $a, 'Bad Gateway'],
            'body not JSON' => ['publish', 200, '<html>', $p, 'unexpected answer from herald: <html>'],
            '200 without ok' => ['health', 200, '{"uptime":1}', $p, 'unexpected answer'],
            '200 with ok false' => ['publish', 200, '{"ok":false,"error":"x"}', $p, 'unexpected answer'],
            'error status with ok true' => ['publish', 400, '{"ok":true,"delivered":1}', $p,
                'status 400 with "ok": true'],
            'no delivered count' => ['publish', 200, '{"ok":true}', $p, '"delivered" is not a count'],
            'negative count' => ['publish', 200, '{"ok":true,"delivered":-1}', $p, '"delivered" is not a count'],
            'batch counts missing' => ['batch', 200, '{"ok":true,"delivered":[]}', $p, 'one count per message'],
            'members not a list' => ['presence', 200, '{"ok":true,"members":"all"}', $p, '"members" is not a list'],
            'online without flag' => ['online', 200, '{"ok":true,"connections":1}', $p, 'no "online" flag'],
        ];
    }

    public function testHeraldPhpLoadsTwiceAndFromTwoCopies(): void
    {
        $root = dirname(__DIR__, 2);
        $copy = sys_get_temp_dir() . '/herald-copy-' . getmypid() . '-' . bin2hex(random_bytes(4));
        mkdir($copy, 0700);
        copy("$root/herald.php", "$copy/herald.php"); // alone: its src/ does not exist, the classes are loaded
        try {
            $code = 'require ' . var_export("$root/herald.php", true) . ';'
                . 'require ' . var_export("$root/herald.php", true) . ';'
                . 'require ' . var_export("$copy/herald.php", true) . ';'
                . 'echo (new ReflectionFunction("herald_publish"))->getFileName(), " ",'
                . ' var_export(herald_publish("u", "e"), true), " ",'
                . ' herald_client() instanceof Herald\ClientInterface ? "interface" : "no";';
            $cmd = [PHP_BINARY, '-n', '-d', 'error_log=/dev/null', '-d', 'display_errors=stderr',
                '-d', 'error_reporting=-1', '-r', $code];
            $proc = proc_open($cmd, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null,
                ['HERALD_SOCKET' => '/nonexistent/herald.sock']);
            self::assertIsResource($proc);
            $out = stream_get_contents($pipes[1]);
            $err = stream_get_contents($pipes[2]);
            self::assertSame(0, proc_close($proc), $err);
            self::assertSame('', $err);
            self::assertSame("$root/herald.php false interface", $out);
        } finally {
            unlink("$copy/herald.php");
            rmdir($copy);
        }
    }
}
