-- archive.orders: topic shop.archive.orders
CREATE TABLE `archive_orders` (
  `id` BIGINT NOT NULL,
  `payload` STRING,
  PRIMARY KEY (`id`) NOT ENFORCED
) WITH (
  'connector' = 'kafka',
  'topic' = 'shop.archive.orders',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.group.id' = 'flink-shop',
  'properties.isolation.level' = 'read_committed',
  'properties.enable.auto.commit' = 'false',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'format' = 'debezium-json',
  'debezium-json.schema-include' = 'false'
);

-- public.2024_stats: topic shop.public.2024_stats
CREATE TABLE `_2024_stats` (
  `day` DATE NOT NULL,
  `hits` BIGINT,
  PRIMARY KEY (`day`) NOT ENFORCED
) WITH (
  'connector' = 'kafka',
  'topic' = 'shop.public.2024_stats',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.group.id' = 'flink-shop',
  'properties.isolation.level' = 'read_committed',
  'properties.enable.auto.commit' = 'false',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'format' = 'debezium-json',
  'debezium-json.schema-include' = 'false'
);

-- public.audit_log: topic shop.public.audit_log
-- no primary key: the relay keys these records by the whole row
CREATE TABLE `audit_log` (
  `at` TIMESTAMP(6),
  `message` STRING
) WITH (
  'connector' = 'kafka',
  'topic' = 'shop.public.audit_log',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.group.id' = 'flink-shop',
  'properties.isolation.level' = 'read_committed',
  'properties.enable.auto.commit' = 'false',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'format' = 'debezium-json',
  'debezium-json.schema-include' = 'false'
);

-- public.order line: topic shop.public.order-20line
CREATE TABLE `order_line` (
  `order_id` BIGINT NOT NULL,
  `line` INT NOT NULL,
  `select` STRING,
  PRIMARY KEY (`order_id`, `line`) NOT ENFORCED
) WITH (
  'connector' = 'kafka',
  'topic' = 'shop.public.order-20line',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.group.id' = 'flink-shop',
  'properties.isolation.level' = 'read_committed',
  'properties.enable.auto.commit' = 'false',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'format' = 'debezium-json',
  'debezium-json.schema-include' = 'false'
);

-- public.orders: topic shop.public.orders
CREATE TABLE `public_orders` (
  `id` BIGINT NOT NULL,
  `customer_id` BIGINT NOT NULL,
  `amount` DECIMAL(12, 2),
  `note``s` STRING,
  `created_at` TIMESTAMP_LTZ(6) NOT NULL,
  PRIMARY KEY (`id`) NOT ENFORCED
) WITH (
  'connector' = 'kafka',
  'topic' = 'shop.public.orders',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.group.id' = 'flink-shop',
  'properties.isolation.level' = 'read_committed',
  'properties.enable.auto.commit' = 'false',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'format' = 'debezium-json',
  'debezium-json.schema-include' = 'false'
);

