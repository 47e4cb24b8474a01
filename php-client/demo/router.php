<?php

/*
 * Router for `php -S`: serves herald.js from php-client/js, hides the files
 * that are not pages (rpc.php is php-fpm's, for Herald only; common.php is
 * included), and serves everything else from this folder.
 */

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/herald.js') {
    header('Content-Type: text/javascript');
    readfile(__DIR__ . '/../js/herald.js');
    return true;
}
if (in_array($path, ['/rpc.php', '/common.php', '/run.sh'], true)) {
    http_response_code(404);
    header('Content-Type: text/plain');
    echo "not found\n";
    return true;
}
return false;
