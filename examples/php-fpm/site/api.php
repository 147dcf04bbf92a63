<?php
// A JSON API: the sum and the sorted list of the numbers given as ?n[]=…
declare(strict_types=1);

header('Content-Type: application/json');
$numbers = array_map('intval', (array) ($_GET['n'] ?? []));
sort($numbers);
echo json_encode(['numbers' => $numbers, 'sum' => array_sum($numbers), 'words' => str_word_count('php behind nginx')], JSON_THROW_ON_ERROR), "\n";
