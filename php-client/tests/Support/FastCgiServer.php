<?php

/**
 * FastCgiServer.php -- runs fastcgi-server.php (a scripted FastCGI responder
 * on a real Unix socket) as a child PHP CLI process, for the tests of kept
 * connections: the client must go through stream_socket_client() with
 * STREAM_CLIENT_PERSISTENT, which a socket pair cannot stand in for.
 *
 * The child is started without a shell and stopped by its own PID (SIGTERM,
 * then SIGKILL), in stop() or, failing that, when PHPUnit exits; its
 * temporary directory goes with it. events() reads back what it logged.
 */

declare(strict_types=1);

namespace Herald\Tests\Support;

final class FastCgiServer
{
    public string $socket;
    private string $dir;
    /** @var resource|null */
    private $process = null;

    /**
     * Start the server and wait (at most 5 s) until its socket accepts.
     *
     * @param list<array<string, mixed>> $plays how to answer the 1st, 2nd... request
     *                                          (see fastcgi-server.php)
     */
    public function __construct(array $plays = [])
    {
        $this->dir = sys_get_temp_dir() . '/herald-fcgi-' . getmypid() . '-' . bin2hex(random_bytes(4));
        if (!mkdir($this->dir, 0700)) {
            throw new \RuntimeException("cannot create {$this->dir}");
        }
        $this->socket = "{$this->dir}/api.sock";
        $null = ['file', '/dev/null', 'r'];
        $cmd = [PHP_BINARY, '-n', __DIR__ . '/fastcgi-server.php', $this->socket, "{$this->dir}/log", json_encode($plays)];
        $this->process = proc_open($cmd, [0 => $null, 1 => $null, 2 => ['file', "{$this->dir}/stderr", 'a']], $pipes)
            ?: null;
        if ($this->process === null) {
            throw new \RuntimeException('cannot start fastcgi-server.php');
        }
        register_shutdown_function(fn () => $this->stop());
        $deadline = microtime(true) + 5.0;
        while (@stream_socket_client("unix://{$this->socket}", $errno, $errstr, 0.5) === false) {
            if (microtime(true) > $deadline || !proc_get_status($this->process)['running']) {
                $err = (string) @file_get_contents("{$this->dir}/stderr");
                $this->stop();
                throw new \RuntimeException("fastcgi-server.php did not start: $err");
            }
            usleep(10000);
        }
        $this->waitFor(fn (array $e) => count(self::of($e, 'close')) === 1); // the probe above
        file_put_contents("{$this->dir}/log", '');
    }

    /** Stop the server (SIGTERM to its PID, then SIGKILL after 5 s) and remove its directory. */
    public function stop(): void
    {
        if ($this->process !== null) {
            proc_terminate($this->process);
            $deadline = microtime(true) + 5.0;
            while (proc_get_status($this->process)['running'] && microtime(true) < $deadline) {
                usleep(10000);
            }
            if (proc_get_status($this->process)['running']) {
                proc_terminate($this->process, 9);
            }
            proc_close($this->process);
            $this->process = null;
        }
        foreach (glob("{$this->dir}/*") ?: [] as $file) {
            @unlink($file);
        }
        @rmdir($this->dir);
    }

    /**
     * Everything logged so far, oldest first; connections numbered from 1 in
     * the order they were accepted (the start-up probe does not count).
     *
     * @return list<array<string, mixed>>
     */
    public function events(): array
    {
        $text = (string) @file_get_contents("{$this->dir}/log");
        $lines = array_filter(explode("\n", $text), fn ($l) => $l !== '');
        $events = array_map(fn ($l) => json_decode($l, true, 8, JSON_THROW_ON_ERROR), $lines);
        $number = [];
        foreach ($events as &$e) {
            $e['conn'] = $number[$e['conn']] ??= count($number) + 1;
        }
        return array_values($events);
    }

    /**
     * Poll events() until $done(events) holds (at most 3 s); return them.
     *
     * @param callable(list<array<string, mixed>>): bool $done
     *
     * @return list<array<string, mixed>>
     */
    public function waitFor(callable $done): array
    {
        $deadline = microtime(true) + 3.0;
        while (!$done($events = $this->events()) && microtime(true) < $deadline) {
            usleep(5000);
        }
        return $events;
    }

    /**
     * The events of one kind.
     *
     * @param list<array<string, mixed>> $events
     *
     * @return list<array<string, mixed>>
     */
    public static function of(array $events, string $kind): array
    {
        return array_values(array_filter($events, fn ($e) => $e['ev'] === $kind));
    }
}
