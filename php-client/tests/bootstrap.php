<?php

/**
 * bootstrap.php -- loads the client for the unit suite.
 *
 * Uses Composer's autoloader when vendor/ exists, else herald.php, which
 * requires the classes itself; the environment is cleared so that tests see
 * the documented defaults. Support/ holds the stand-ins: FakeHerald (the API
 * socket, over socket pairs), FastCgiServer (a scripted FastCGI server on a
 * real Unix socket, for kept connections) and PhpFpm (a private php-fpm for
 * RPC scripts).
 */

declare(strict_types=1);

$autoload = __DIR__ . '/../vendor/autoload.php';
if (is_file($autoload)) {
    require $autoload;
} else {
    require_once __DIR__ . '/../herald.php';
}
require_once __DIR__ . '/Support/FakeHerald.php';
require_once __DIR__ . '/Support/PhpFpm.php';
require_once __DIR__ . '/Support/FastCgiServer.php';

putenv('HERALD_SOCKET');
putenv('HERALD_SECRET');
