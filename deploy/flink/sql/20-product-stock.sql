-- Stateful job: stock per product, a join and an aggregate over the MySQL
-- relay's compacted topics, upserted into inv.flink.product_stock.
--
-- No checkpoints. upsert-kafka always reads its topic from the earliest
-- offset, and compaction keeps the latest row of every key there, so a
-- restarted job rebuilds its whole join and aggregate state from Kafka alone.
-- MySQL is never queried again.
--
-- read_committed: the relay writes in Kafka transactions; without it, Flink
-- would also read records of transactions that were aborted.

SET 'pipeline.name' = 'product-stock';

CREATE TABLE products (
  `id`    INT            NOT NULL,
  `sku`   STRING         NOT NULL,
  `name`  STRING         NOT NULL,
  `price` DECIMAL(10, 2) NOT NULL,
  PRIMARY KEY (`id`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'inv.inventory.products',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.isolation.level' = 'read_committed',
  'key.format' = 'json',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
);

CREATE TABLE stock_levels (
  `product_id` INT    NOT NULL,
  `warehouse`  STRING NOT NULL,
  `qty`        INT    NOT NULL,
  PRIMARY KEY (`product_id`, `warehouse`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'inv.inventory.stock_levels',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.isolation.level' = 'read_committed',
  'key.format' = 'json',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
);

CREATE TABLE product_stock (
  `product_id`  INT            NOT NULL,
  `sku`         STRING         NOT NULL,
  `name`        STRING         NOT NULL,
  `warehouses`  BIGINT         NOT NULL,
  `total_qty`   BIGINT         NOT NULL,
  `stock_value` DECIMAL(20, 2) NOT NULL,
  PRIMARY KEY (`product_id`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'inv.flink.product_stock',
  'properties.bootstrap.servers' = 'kafka:9092',
  'key.format' = 'json',
  'value.format' = 'json',
  -- 1860.00, not Flink's default 1.86E+3.
  'value.json.encode.decimal-as-plain-number' = 'true'
);

INSERT INTO product_stock
SELECT
  p.`id`,
  p.`sku`,
  p.`name`,
  COUNT(s.`warehouse`),
  COALESCE(SUM(CAST(s.`qty` AS BIGINT)), 0),
  CAST(COALESCE(SUM(s.`qty` * p.`price`), 0) AS DECIMAL(20, 2))
FROM products AS p
LEFT JOIN stock_levels AS s ON s.`product_id` = p.`id`
GROUP BY p.`id`, p.`sku`, p.`name`;
