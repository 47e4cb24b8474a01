<?php

/**
 * .php-cs-fixer.dist.php -- the Herald PHP client's code style: PSR-12.
 *
 * Run `php-cs-fixer fix --dry-run --diff` in php-client/ (the tool is not a
 * dependency of the package; install it globally).
 */

declare(strict_types=1);

$finder = PhpCsFixer\Finder::create()
    ->in([__DIR__ . '/src', __DIR__ . '/tests'])
    ->append([__DIR__ . '/herald.php', __FILE__]);

return (new PhpCsFixer\Config())
    ->setRiskyAllowed(true)
    ->setRules([
        '@PSR12' => true,
        'declare_strict_types' => true,
        'strict_comparison' => true,
        'no_unused_imports' => true,
        'ordered_imports' => true,
    ])
    ->setFinder($finder);
