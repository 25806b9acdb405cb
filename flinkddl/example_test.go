package flinkddl_test

import (
	"os"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/flinkddl"
)

func ExampleWrite() {
	tables := []change.TableSchema{{
		ID: change.TableID{Namespace: "inventory", Name: "products"},
		Columns: []change.ColumnSchema{
			{Name: "id", SourceType: "int", FlinkType: "INT"},
			{Name: "price", SourceType: "decimal(10,2)", FlinkType: "DECIMAL(10, 2)", Nullable: true},
		},
		Key: []string{"id"},
	}}
	opts := flinkddl.Options{
		Brokers:     []string{"kafka:9092"},
		TopicPrefix: "inv",
		Format:      flinkddl.Upsert,
	}
	if err := flinkddl.Write(os.Stdout, tables, opts); err != nil {
		panic(err)
	}
	// Output:
	// -- inventory.products: topic inv.inventory.products
	// CREATE TABLE `products` (
	//   `id` INT NOT NULL,
	//   `price` DECIMAL(10, 2),
	//   PRIMARY KEY (`id`) NOT ENFORCED
	// ) WITH (
	//   'connector' = 'upsert-kafka',
	//   'topic' = 'inv.inventory.products',
	//   'properties.bootstrap.servers' = 'kafka:9092',
	//   'properties.isolation.level' = 'read_committed',
	//   'key.format' = 'json',
	//   'value.format' = 'json',
	//   'value.fields-include' = 'ALL'
	// );
}
