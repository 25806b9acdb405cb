// Package goldentypes holds the tables of every type that the sources'
// golden tests encode, so that other tests (verify's) use the same ones.
package goldentypes

import "strings"

// PostgresCases are (column name, SQL type, SQL literal): one column of
// each type the PostgreSQL source encodes, at an interesting value.
var PostgresCases = [][3]string{
	{"c_int2", "int2", "-32768"},
	{"c_int4", "int4", "2147483647"},
	{"c_int8", "int8", "-9223372036854775808"},
	{"c_num", "numeric(12,3)", "123456789.125"},
	{"c_num_neg", "numeric(5,2)", "-0.50"},
	{"c_num_big", "numeric(40,2)", "12345678901234567890123456789012345678.12"},
	{"c_num_free", "numeric", "3.14159265358979323846264338327950288419716939937510"},
	{"c_num_nan", "numeric", "'NaN'"},
	{"c_num_inf", "numeric", "'-Infinity'"},
	{"c_float4", "float4", "1.5"},
	{"c_float8", "float8", "0.1"},
	{"c_float8_exp", "float8", "1e300"},
	{"c_float_nan", "float8", "'NaN'"},
	{"c_float_inf", "float4", "'Infinity'"},
	{"c_bool", "bool", "true"},
	{"c_text", "text", `E'quote " backslash \\ tab \t ünï 😀'`},
	{"c_varchar", "varchar(10)", "'abc'"},
	{"c_char", "char(5)", "'ab'"},
	{"c_bytea", "bytea", `'\x00ff10'`},
	{"c_date", "date", "'2024-01-31'"},
	{"c_date_inf", "date", "'infinity'"},
	{"c_time", "time", "'12:34:56.123456'"},
	{"c_time0", "time(0)", "'12:34:56'"},
	{"c_ts", "timestamp", "'2024-01-31 12:34:56.123456'"},
	{"c_ts3", "timestamp(3)", "'2024-01-31 12:34:56.5'"},
	{"c_ts_ninf", "timestamp", "'-infinity'"},
	{"c_tstz", "timestamptz", "'2024-01-31 12:34:56.123456+02'"},
	{"c_tstz_inf", "timestamptz", "'infinity'"},
	{"c_tstz_ninf", "timestamptz", "'-infinity'"},
	{"c_tstz_bc", "timestamptz", "'0044-03-15 12:00:00+00 BC'"},
	{"c_ts_big", "timestamp", "'10000-01-01 00:00:00.25'"},
	{"c_stamp", "stamp", "'2024-06-30 23:59:59.999999+00'"},
	{"c_timetz", "timetz", "'12:00:00+02'"},
	{"c_interval", "interval", "'1 year 2 mons 3 days 04:05:06.5'"},
	{"c_uuid", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"},
	{"c_json", "json", `'{"a": [1, 2]}'`},
	{"c_jsonb", "jsonb", `'{"b": null, "a": 1}'`},
	{"c_int_arr", "int4[]", "'{1,NULL,3}'"},
	{"c_text_arr", "text[]", `ARRAY['a b', 'q"uote', NULL, 'NULL', '']`},
	{"c_2d_arr", "int8[][]", "'{{1,2},{3,4}}'"},
	{"c_3d_arr", "text[][][]", `'{{{a,"b c"},{NULL,""}}}'`},
	{"c_num_arr", "numeric(6,2)[]", "'{1.50,-2.25}'"},
	{"c_ts_arr", "timestamptz[]", `'{"2024-01-01 00:00:00+00"}'`},
	{"c_empty_arr", "int4[]", "'{}'"},
	{"c_enum", "mood", "'happy'"},
	{"c_enum_arr", "mood[]", "'{sad,happy}'"},
	{"c_domain", "posint", "7"},
	{"c_range", "int4range", "'[1,10)'"},
	{"c_inet", "inet", "'10.0.0.1/8'"},
	{"c_money", "money", "12.34"},
	{"c_null", "text", "NULL"},
}

// PostgresTable returns the statements that create the enum and domains
// the cases use and the table types (id int PRIMARY KEY, one column per
// case).
func PostgresTable() string {
	cols := make([]string, len(PostgresCases))
	for i, c := range PostgresCases {
		cols[i] = c[0] + " " + c[1]
	}
	return `CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN stamp AS timestamptz;
CREATE TABLE types (id int PRIMARY KEY, ` + strings.Join(cols, ", ") + `)`
}

// PostgresValues returns the VALUES list of the cases, after the id.
func PostgresValues() string {
	vals := make([]string, len(PostgresCases))
	for i, c := range PostgresCases {
		vals[i] = c[2]
	}
	return strings.Join(vals, ", ")
}

// MariaDBTable creates shop.types, one column of each type the MySQL source
// encodes.
const MariaDBTable = `CREATE TABLE shop.types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, biu BIGINT UNSIGNED, b BOOL,
  d DECIMAL(20,6), dn DECIMAL(5,2), f FLOAT, db DOUBLE,
  bit1 BIT(1), bit12 BIT(12),
  c CHAR(10), vc VARCHAR(100), tx TEXT, l1 VARCHAR(20) CHARACTER SET latin1,
  bn BINARY(4), vb VARBINARY(10), bl BLOB,
  dt DATE, dtm DATETIME(6), dt0 DATETIME, ts TIMESTAMP(6) NULL DEFAULT NULL,
  tm TIME(6), tm0 TIME, yr YEAR,
  js JSON, en ENUM('a','b','c'), st SET('x','y','z'),
  zd DATE, dz DECIMAL(8,2) ZEROFILL, iz INT ZEROFILL, u UUID, ip6 INET6, ip4 INET4, nul INT
) DEFAULT CHARSET=utf8mb4`

// MariaDBRow is every type at interesting values; %d is the id.
const MariaDBRow = `INSERT INTO shop.types VALUES (%d,
  -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615, 1,
  -12345678901234.123456, 0.50, 3.14159, 2.718281828459045,
  b'1', b'101010101010',
  'abc', _utf8mb4'ünï😀 "q"\n\\<&>', 'long text', _utf8mb4'café',
  X'0102', X'00FF', X'DEADBEEF',
  '2024-01-31', '2024-01-31 12:34:56.123456', '2024-01-31 12:34:56', '2024-01-31 12:34:56.123456',
  '12:34:56.000000', '838:59:59', 2024,
  '{"a": [1, 2.5, "x"]}', 'b', 'x,z',
  '0000-00-00', 12.5, 7, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2001:db8::1', '10.0.0.1', NULL)`

// MariaDBEdge holds the other ends: zeros, negatives, empty strings.
const MariaDBEdge = `INSERT INTO shop.types VALUES (%d,
  127, 0, 32767, 0, 8388607, 0, 2147483647, 0,
  9223372036854775807, 0, 0,
  0, -0.01, -1.5e-7, 1e300,
  b'0', b'000000000001',
  '', '', '', '',
  X'', X'', X'',
  '1000-01-01', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:00', '1970-01-01 00:00:01.000001',
  '-01:02:03.500000', '-838:59:59', 1901,
  'null', 'a', '',
  NULL, 0, 0, 'a0eebc99-9c0b-11e8-bb6d-6bb9bd380a00', '::ffff:1.2.3.0', '0.0.0.0', 7)`
