<?php
// A PHP page through php-fpm behind nginx: greets the caller, computes with PHP's own
// functions (hash, JSON, dates in UTC), and says which SAPI ran it.
declare(strict_types=1);

$name = $_GET['name'] ?? 'world';
$name = preg_replace('/[^A-Za-z0-9 _-]/', '', (string) $name);
header('Content-Type: text/html; charset=utf-8');
?><!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>aim php-fpm</title><link rel="stylesheet" href="/style.css"></head>
<body>
<h1>Hello, <?= htmlspecialchars($name) ?>!</h1>
<p>PHP <?= PHP_MAJOR_VERSION ?>.<?= PHP_MINOR_VERSION ?> through <?= PHP_SAPI ?>.</p>
<p>sha256("<?= htmlspecialchars($name) ?>") = <?= hash('sha256', $name) ?></p>
<p>The epoch in ISO 8601: <?= gmdate('c', 0) ?></p>
</body>
</html>
