-- public.orders: topic shop.public.orders
CREATE TABLE `orders` (
  `id` BIGINT NOT NULL,
  `customer_id` BIGINT NOT NULL,
  `amount` DECIMAL(12, 2),
  `note``s` STRING,
  `created_at` TIMESTAMP_LTZ(6) NOT NULL,
  PRIMARY KEY (`id`) NOT ENFORCED
) WITH (
  'connector' = 'kafka',
  'topic' = 'shop.public.orders',
  'properties.bootstrap.servers' = 'k1:9092,k2:9092',
  'properties.group.id' = 'orders-job',
  'properties.isolation.level' = 'read_committed',
  'properties.enable.auto.commit' = 'false',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'format' = 'debezium-json',
  'debezium-json.schema-include' = 'false'
);

