<?php

/**
 * PhpFpm.php -- a private php-fpm for tests of what an RPC script answers.
 *
 * Herald calls the site's RPC script through php-fpm, so this runs the real
 * php-fpm (Debian's php-fpm8.2, installed by `make deps`) on a Unix socket in
 * a temporary directory, with no php.ini (-n), one static worker and
 * HERALD_SECRET in the pool's environment, and sends it FastCGI requests the
 * way docs/protocol.md section 3 says Herald does. Answers are parsed with
 * Herald\FastCgi::parseResponse, so the status and headers checked are what
 * php-fpm really sends. Each script's error_log lines are read back.
 *
 * The process is started without a shell and stopped by its own PID, in
 * tearDownAfterClass() or, failing that, when PHPUnit exits.
 */

declare(strict_types=1);

namespace Herald\Tests\Support;

use Herald\FastCgi;
use Herald\FastCgiTransport;

final class PhpFpm
{
    public const SECRET = 'fpm-test-secret';

    private string $dir;
    /** @var resource|null */
    private $process = null;
    private int $scripts = 0;
    private int $logOffset = 0;

    /**
     * The php-fpm binary matching the PHP running the tests, or null.
     */
    public static function binary(): ?string
    {
        $version = PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION;
        foreach (["/usr/sbin/php-fpm$version", '/usr/sbin/php-fpm'] as $path) {
            if (is_executable($path)) {
                return $path;
            }
        }
        return null;
    }

    /**
     * Start php-fpm and wait (at most 5 s) until its socket accepts.
     *
     * @throws \RuntimeException when it does not come up
     */
    public function __construct(string $binary)
    {
        $this->dir = sys_get_temp_dir() . '/herald-fpm-' . getmypid() . '-' . bin2hex(random_bytes(4));
        if (!mkdir($this->dir, 0700)) {
            throw new \RuntimeException("cannot create {$this->dir}");
        }
        $conf = "[global]\n"
            . "error_log = {$this->dir}/fpm.log\n"
            . "daemonize = no\n"
            . "[herald-test]\n"
            . "listen = {$this->dir}/fpm.sock\n"
            . "pm = static\n"
            . "pm.max_children = 1\n"
            . "env[HERALD_SECRET] = " . self::SECRET . "\n"
            . "php_admin_value[error_log] = {$this->dir}/php.log\n"
            . "php_admin_flag[log_errors] = on\n"
            . "php_admin_flag[display_errors] = off\n";
        file_put_contents("{$this->dir}/fpm.conf", $conf);
        $null = ['file', '/dev/null', 'r+'];
        // -R: allowed to run as root (as in CI containers); harmless otherwise
        $cmd = [$binary, '-n', '-F', '-R', '-y', "{$this->dir}/fpm.conf"];
        $this->process = proc_open($cmd, [0 => $null, 1 => $null, 2 => $null], $pipes) ?: null;
        if ($this->process === null) {
            throw new \RuntimeException("cannot start $binary");
        }
        $deadline = microtime(true) + 5.0;
        while (!file_exists("{$this->dir}/fpm.sock")) {
            if (microtime(true) > $deadline || !proc_get_status($this->process)['running']) {
                $log = (string) @file_get_contents("{$this->dir}/fpm.log");
                $this->stop();
                throw new \RuntimeException("php-fpm did not start: $log");
            }
            usleep(10000);
        }
        register_shutdown_function(fn () => $this->stop()); // even if PHPUnit dies early
    }

    /** Stop php-fpm (SIGTERM to its PID, then SIGKILL after 5 s) and remove the directory. */
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
     * Run $code (after `require herald.php`) as the RPC script for one request.
     *
     * @param string               $code   PHP statements
     * @param string               $body   the request body (STDIN)
     * @param array<string, string> $params extra FastCGI parameters, such as HERALD_SIGNATURE
     *
     * @return array{status: int, headers: array<string, string>, body: string, log: list<string>}
     *         the parsed answer and the error_log lines the script wrote (timestamps removed)
     */
    public function run(string $code, string $body, array $params = []): array
    {
        $script = sprintf('%s/script-%d.php', $this->dir, $this->scripts++);
        $herald = var_export(dirname(__DIR__, 2) . '/herald.php', true);
        file_put_contents($script, "<?php\ndeclare(strict_types=1);\nrequire $herald;\n$code\n");
        $params = [
            'GATEWAY_INTERFACE' => 'CGI/1.1',
            'SERVER_PROTOCOL' => 'HTTP/1.1',
            'SERVER_SOFTWARE' => 'herald/test',
            'REQUEST_METHOD' => 'POST',
            'REQUEST_URI' => '/herald/rpc',
            'SCRIPT_FILENAME' => $script,
            'CONTENT_TYPE' => 'application/json',
            'CONTENT_LENGTH' => (string) strlen($body),
            'REMOTE_ADDR' => '127.0.0.1',
        ] + $params;
        $stream = FastCgiTransport::connectUnix("{$this->dir}/fpm.sock", 2.0);
        stream_set_timeout($stream, 5);
        fwrite($stream, FastCgi::encodeRequest($params, $body));
        $bytes = stream_get_contents($stream);
        $timedOut = stream_get_meta_data($stream)['timed_out'];
        fclose($stream);
        if ($timedOut) {
            throw new \RuntimeException('php-fpm did not answer within 5 s');
        }
        $stdout = '';
        foreach (FakeHerald::decodeRecords((string) $bytes) as $record) {
            if ($record['type'] === FastCgi::STDOUT) {
                $stdout .= $record['content'];
            }
        }
        return FastCgi::parseResponse($stdout) + ['log' => $this->newLogLines()];
    }

    /**
     * The lines added to the scripts' error log since the last call.
     *
     * @return list<string>
     */
    private function newLogLines(): array
    {
        clearstatcache();
        $all = (string) @file_get_contents("{$this->dir}/php.log");
        $new = substr($all, $this->logOffset);
        $this->logOffset = strlen($all);
        $lines = $new === '' ? [] : explode("\n", rtrim($new, "\n"));
        return array_map(fn ($l) => (string) preg_replace('/^\[[^]]*\] /', '', $l), $lines);
    }
}
