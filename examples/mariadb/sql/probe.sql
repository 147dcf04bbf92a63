-- The aim mariadb example's probe: a database, tables, rows written in a transaction, and a query
-- that joins, groups and orders them. Idempotent (IF NOT EXISTS, ON DUPLICATE KEY UPDATE; REPLACE would delete rows a foreign key holds): aim verify runs each
-- probe several times against the same server, and every run must answer the same.
CREATE DATABASE IF NOT EXISTS shop;
USE shop;
CREATE TABLE IF NOT EXISTS item (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, price_cents INT NOT NULL) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS sale (id INT PRIMARY KEY, item_id INT NOT NULL, qty INT NOT NULL, FOREIGN KEY (item_id) REFERENCES item (id)) ENGINE=InnoDB;
START TRANSACTION;
INSERT INTO item VALUES (1, 'kernel', 250), (2, 'initramfs', 120), (3, 'rootfs', 900)
  ON DUPLICATE KEY UPDATE name = VALUES(name), price_cents = VALUES(price_cents);
INSERT INTO sale VALUES (1, 1, 2), (2, 3, 1), (3, 3, 4), (4, 2, 7)
  ON DUPLICATE KEY UPDATE item_id = VALUES(item_id), qty = VALUES(qty);
COMMIT;
SELECT i.name, SUM(s.qty) AS sold, SUM(s.qty * i.price_cents) AS cents
  FROM item i JOIN sale s ON s.item_id = i.id
  GROUP BY i.name ORDER BY cents DESC;
