<?php

/*
 * Router for `php -S`: serves herald.js from php-client/js and the favicon
 * (also as /favicon.ico, which a browser asks for on any page without an
 * icon link), hides the files that are not pages (rpc.php is php-fpm's, for
 * Herald only; common.php is included), and serves everything else from
 * this folder.
 */

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/herald.js') {
    header('Content-Type: text/javascript');
    readfile(__DIR__ . '/../js/herald.js');
    return true;
}
if ($path === '/favicon.svg' || $path === '/favicon.ico') {
    header('Content-Type: image/svg+xml');
    header('Cache-Control: max-age=3600');
    readfile(__DIR__ . '/favicon.svg');
    return true;
}
if (in_array($path, ['/rpc.php', '/common.php', '/run.sh'], true)) {
    http_response_code(404);
    header('Content-Type: text/plain');
    echo "not found\n";
    return true;
}
return false;
