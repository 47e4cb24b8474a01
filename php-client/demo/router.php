<?php
/*
 * Router for `php -S`: serves herald.js from php-client/js, everything
 * else from this folder.
 */
if (parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) === '/herald.js') {
    header('Content-Type: text/javascript');
    readfile(__DIR__ . '/../js/herald.js');
    return true;
}
return false;
