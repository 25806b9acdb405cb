-- inventory.it's: topic custom.it's
CREATE TABLE `it_s` (
  `id` INT NOT NULL,
  PRIMARY KEY (`id`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'custom.it''s',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.isolation.level' = 'read_committed',
  'key.format' = 'json',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
);

