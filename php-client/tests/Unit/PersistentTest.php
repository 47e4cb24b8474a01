<?php

/**
 * PersistentTest.php -- the persistent option against a real Unix socket:
 * fastcgi-server.php in its own process (FastCgiServer) answers each
 * request as the test scripts it, and logs every accept and request. Each
 * answer carries its request's number as "delivered", so a call that got
 * another call's answer shows. The client is the real one, through
 * stream_socket_client(STREAM_CLIENT_PERSISTENT).
 */

declare(strict_types=1);

namespace Herald\Tests\Unit;

use Herald\Client;
use Herald\ConnectionException;
use Herald\Exception;
use Herald\FastCgiTransport;
use Herald\ProtocolException;
use Herald\Tests\Support\FastCgiServer;
use PHPUnit\Framework\TestCase;

final class PersistentTest extends TestCase
{
    private ?FastCgiServer $server = null;

    protected function tearDown(): void
    {
        $this->server?->stop();
    }

    /** @param list<array<string, mixed>> $plays */
    private function serve(array $plays = []): Client
    {
        $this->server = new FastCgiServer($plays);
        return new Client(['socket' => $this->server->socket, 'persistent' => true, 'timeout' => 1.0]);
    }

    /**
     * The server's events once it has logged $requests requests.
     *
     * @return list<array<string, mixed>>
     */
    private function events(int $requests): array
    {
        return $this->server->waitFor(fn ($e) => count(FastCgiServer::of($e, 'request')) >= $requests);
    }

    public function testOneConnectionServesEveryCall(): void
    {
        $client = $this->serve();

        $got = [];
        for ($i = 0; $i < 5; $i++) {
            $got[] = $client->publish('u', 'e', $i);
        }
        $other = new Client(['socket' => $this->server->socket, 'persistent' => true]);
        $got[] = $other->publish('u', 'e', 5); // another client, same socket: same connection

        self::assertSame([1, 2, 3, 4, 5, 6], $got);
        $events = $this->events(6);
        self::assertCount(1, FastCgiServer::of($events, 'accept'));
        self::assertCount(0, FastCgiServer::of($events, 'close'));
        $requests = FastCgiServer::of($events, 'request');
        self::assertSame([true], array_values(array_unique(array_column($requests, 'keep'))));
        self::assertSame('{"users":["u"],"event":"e","data":3}', $requests[3]['stdin']);
        $ids = array_column($requests, 'id');
        self::assertCount(6, array_unique($ids), 'request ids vary: ' . implode(',', $ids));
    }

    public function testEachPageStartsAtAnotherRequestId(): void
    {
        // a php-fpm page starts with no statics: its first id comes from the clock
        $client = $this->serve();
        $lastId = new \ReflectionProperty(FastCgiTransport::class, 'lastId');
        $lastId->setAccessible(true);
        for ($page = 0; $page < 3; $page++) {
            $lastId->setValue(null, 0);
            $client->publish('u', 'e');
            usleep(1000);
        }

        $ids = array_column(FastCgiServer::of($this->events(3), 'request'), 'id');
        self::assertCount(3, array_unique($ids), 'first ids of three pages: ' . implode(',', $ids));
        foreach ($ids as $id) {
            self::assertGreaterThanOrEqual(1, $id);
            self::assertLessThanOrEqual(0xffff, $id);
        }
    }

    public function testEachSocketKeepsItsOwnConnection(): void
    {
        $client = $this->serve();
        $second = new FastCgiServer();
        try {
            $other = new Client(['socket' => $second->socket, 'persistent' => true, 'timeout' => 1.0]);
            $got = [];
            for ($i = 0; $i < 3; $i++) {
                $got[] = $client->publish('u', 'first');
                $got[] = $other->publish('u', 'second');
            }
            self::assertSame([1, 1, 2, 2, 3, 3], $got);
            foreach ([[$this->server, 'first'], [$second, 'second']] as [$server, $event]) {
                $events = $server->waitFor(fn ($e) => count(FastCgiServer::of($e, 'request')) >= 3);
                self::assertCount(1, FastCgiServer::of($events, 'accept'));
                self::assertSame([$event, $event, $event], array_map(
                    fn ($r) => json_decode($r['stdin'], true)['event'],
                    FastCgiServer::of($events, 'request')
                ));
            }
        } finally {
            $second->stop();
        }
    }

    public function testWithoutPersistentEveryCallConnects(): void
    {
        $this->server = new FastCgiServer();
        $client = new Client(['socket' => $this->server->socket]);

        self::assertSame(1, $client->publish('u', 'e'));
        self::assertSame(2, $client->publish('u', 'e'));
        $events = $this->server->waitFor(fn ($e) => count(FastCgiServer::of($e, 'close')) >= 2);
        self::assertCount(2, FastCgiServer::of($events, 'accept'));
        self::assertSame([false, false], array_column(FastCgiServer::of($events, 'request'), 'keep'));
        self::assertSame([1, 1], array_column(FastCgiServer::of($events, 'request'), 'id'));
    }

    public function testLeftoverBytesAfterTheAnswerAreNotReused(): void
    {
        $client = $this->serve([['do' => 'leftover']]);

        self::assertSame(1, $client->publish('u', 'e'));
        self::assertSame(2, $client->publish('u', 'e'));
        self::assertSame(3, $client->publish('u', 'e'));

        $events = $this->events(3);
        self::assertCount(2, FastCgiServer::of($events, 'accept'));
        self::assertSame([1, 2, 2], array_column(FastCgiServer::of($events, 'request'), 'conn'));
    }

    public function testLeftoverBytesThatComeAfterTheAnswerAreFoundBeforeReuse(): void
    {
        // the stray bytes come 0.2 s after the answer: the client has long stopped reading,
        // and finds them only when it checks the connection before its next request
        $client = $this->serve([['do' => 'late_leftover', 'delay' => 0.2]]);

        self::assertSame(1, $client->publish('u', 'e'));
        $this->server->waitFor(fn ($e) => count(FastCgiServer::of($e, 'later')) === 1);
        self::assertSame(2, $client->publish('u', 'e'));
        self::assertSame(3, $client->publish('u', 'e'));

        $events = $this->events(3);
        self::assertCount(2, FastCgiServer::of($events, 'accept'));
        self::assertSame([1, 2, 2], array_column(FastCgiServer::of($events, 'request'), 'conn'));
    }

    public function testAnAnswerForAnotherRequestIsAProtocolErrorAndDropsTheConnection(): void
    {
        $client = $this->serve([['do' => 'answer'], ['do' => 'wrong_id']]);

        self::assertSame(1, $client->publish('u', 'e'));
        try {
            $client->publish('u', 'e');
            self::fail('an answer with the wrong id was taken');
        } catch (ProtocolException $e) {
            self::assertMatchesRegularExpression('/a record for request \d+, not \d+/', $e->getMessage());
        }
        self::assertSame(3, $client->publish('u', 'e'));

        $events = $this->events(3);
        self::assertCount(2, FastCgiServer::of($events, 'accept'));
        self::assertSame([1, 1, 2], array_column(FastCgiServer::of($events, 'request'), 'conn'));
        self::assertSame(1, FastCgiServer::of($events, 'close')[0]['conn']);
    }

    public function testTimeoutMidAnswerThenTheNextCallGetsItsOwnAnswer(): void
    {
        $client = $this->serve([['do' => 'answer'], ['do' => 'stall', 'delay' => 1.5]]);

        self::assertSame(1, $client->publish('u', 'e'));
        $start = microtime(true);
        try {
            $client->publish('u', 'e');
            self::fail('no timeout');
        } catch (ConnectionException $e) {
            self::assertStringContainsString('did not answer within 1 s', $e->getMessage());
        }
        self::assertLessThan(1.4, microtime(true) - $start);
        // the stalled answer's end arrives on the old connection, which nobody reads any more
        self::assertSame(3, $client->publish('u', 'e'));
        usleep(600000);
        self::assertSame(4, $client->publish('u', 'e'));

        $events = $this->events(4);
        self::assertCount(2, FastCgiServer::of($events, 'accept'));
        self::assertSame([1, 1, 2, 2], array_column(FastCgiServer::of($events, 'request'), 'conn'));
    }

    public function testAConnectionTheServerClosedIsReplaced(): void
    {
        $client = $this->serve([['do' => 'close']]);

        self::assertSame(1, $client->publish('u', 'e'));
        $this->server->waitFor(fn ($e) => count(FastCgiServer::of($e, 'close')) === 1);
        self::assertSame(2, $client->publish('u', 'e'));
        self::assertSame(3, $client->publish('u', 'e'));

        $events = $this->events(3);
        self::assertCount(2, FastCgiServer::of($events, 'accept'));
        self::assertSame([1, 2, 2], array_column(FastCgiServer::of($events, 'request'), 'conn'));
    }

    public function testAFailedWriteOnAReusedConnectionIsSentOnceMoreOnAFreshOne(): void
    {
        // the server stops reading the kept connection without closing it: nothing shows on
        // our side until the write fails, so the request never reached it and is resent
        $client = $this->serve([['do' => 'shut_rd']]);

        self::assertSame(1, $client->publish('u', 'first'));
        self::assertSame(2, $client->publish('u', 'second'));
        self::assertSame(3, $client->publish('u', 'third'));

        $events = $this->events(3);
        self::assertCount(2, FastCgiServer::of($events, 'accept'));
        $requests = FastCgiServer::of($events, 'request');
        self::assertSame([1, 2, 2], array_column($requests, 'conn'));
        self::assertSame(['first', 'second', 'third'], array_map(
            fn ($r) => json_decode($r['stdin'], true)['event'],
            $requests
        ));
    }

    public function testAConnectionLeftMidRequestIsNeverReused(): void
    {
        // What a page that died mid-request (a fatal error, max_execution_time) leaves:
        // the kept connection marked busy, half a request written, and PHP's statics gone.
        $client = $this->serve();
        self::assertSame(1, $client->publish('u', 'e'));
        $transport = new FastCgiTransport($this->server->socket, 1.0, 1.0, null, true);
        $take = new \ReflectionMethod($transport, 'take');
        $take->setAccessible(true);
        [$stream, $reused] = $take->invoke($transport);
        self::assertTrue($reused);
        fwrite($stream, substr(\Herald\FastCgi::encodeRequest(['A' => 'b'], '{"half":1}', 77, true), 0, 30));
        $busy = new \ReflectionProperty(FastCgiTransport::class, 'busy');
        $busy->setAccessible(true);
        $busy->setValue(null, []);

        self::assertSame(2, $client->publish('u', 'e'));

        $events = $this->events(2);
        self::assertCount(2, FastCgiServer::of($events, 'accept'));
        self::assertSame([1, 2], array_column(FastCgiServer::of($events, 'request'), 'conn'));
        $closed = FastCgiServer::of($events, 'close');
        self::assertSame(1, $closed[0]['conn']);
        // BEGIN_REQUEST (16 bytes) was read; 14 bytes of a PARAMS record were still waiting for the rest
        self::assertSame(14, $closed[0]['partial'], 'the half request was never completed');
        self::assertNotContains(77, array_column(FastCgiServer::of($events, 'request'), 'id'));
    }

    public function testACallMadeWhileTheKeptConnectionIsBusyUsesItsOwn(): void
    {
        // An error handler or destructor that publishes while a request is in flight.
        $client = $this->serve();
        self::assertSame(1, $client->publish('u', 'e'));
        $transport = new FastCgiTransport($this->server->socket, 1.0, 1.0, null, true);
        $take = new \ReflectionMethod($transport, 'take');
        $take->setAccessible(true);
        [$stream] = $take->invoke($transport);

        self::assertSame(2, $client->publish('u', 'nested'));

        $events = $this->events(2);
        self::assertCount(2, FastCgiServer::of($events, 'accept'));
        $requests = FastCgiServer::of($events, 'request');
        self::assertSame([true, false], array_column($requests, 'keep'));
        self::assertSame([1, 2], array_column($requests, 'conn'));
        self::assertTrue(is_resource($stream), 'the busy connection was left alone');
        $drop = new \ReflectionMethod($transport, 'drop');
        $drop->setAccessible(true);
        $drop->invoke($transport, $stream);
        self::assertSame(3, $client->publish('u', 'e'));
    }

    public function testNoServerIsAConnectionError(): void
    {
        $path = sys_get_temp_dir() . '/herald-missing-' . getmypid() . '.sock';
        $client = new Client(['socket' => $path, 'persistent' => true]);

        $this->expectException(ConnectionException::class);
        $this->expectExceptionMessage("cannot connect to unix://$path");
        $client->publish('u', 'e');
    }

    public function testPersistentOptionChecks(): void
    {
        foreach ([['persistent' => 1], ['persistent' => 'yes']] as $options) {
            try {
                new Client($options);
                self::fail('accepted ' . json_encode($options));
            } catch (Exception $e) {
                self::assertSame('option "persistent" must be true or false', $e->getMessage());
            }
        }
        $this->expectException(Exception::class);
        $this->expectExceptionMessage('a connector cannot be persistent');
        new Client(['persistent' => true, 'connector' => fn () => null]);
    }
}
