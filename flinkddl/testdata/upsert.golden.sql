-- archive.orders: topic inv.archive.orders
CREATE TABLE `archive_orders` (
  `id` BIGINT NOT NULL,
  `payload` STRING,
  PRIMARY KEY (`id`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'inv.archive.orders',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.isolation.level' = 'read_committed',
  'key.format' = 'json',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
);

-- public.2024_stats: topic inv.public.2024_stats
CREATE TABLE `_2024_stats` (
  `day` DATE NOT NULL,
  `hits` BIGINT,
  PRIMARY KEY (`day`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'inv.public.2024_stats',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.isolation.level' = 'read_committed',
  'key.format' = 'json',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
);

-- public.order line: topic inv.public.order-20line
CREATE TABLE `order_line` (
  `order_id` BIGINT NOT NULL,
  `line` INT NOT NULL,
  `select` STRING,
  PRIMARY KEY (`order_id`, `line`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'inv.public.order-20line',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.isolation.level' = 'read_committed',
  'key.format' = 'json',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
);

-- public.orders: topic inv.public.orders
CREATE TABLE `public_orders` (
  `id` BIGINT NOT NULL,
  `customer_id` BIGINT NOT NULL,
  `amount` DECIMAL(12, 2),
  `note``s` STRING,
  `created_at` TIMESTAMP_LTZ(6) NOT NULL,
  PRIMARY KEY (`id`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'inv.public.orders',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.isolation.level' = 'read_committed',
  'key.format' = 'json',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
);

