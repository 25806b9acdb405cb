-- Demo schema for the MySQL relay: a tiny inventory. The database itself is
-- created by the image from MYSQL_DATABASE=inventory.

USE inventory;

CREATE TABLE products (
    id    INT           NOT NULL AUTO_INCREMENT PRIMARY KEY,
    sku   VARCHAR(32)   NOT NULL UNIQUE,
    name  VARCHAR(200)  NOT NULL,
    price DECIMAL(10,2) NOT NULL
);

CREATE TABLE stock_levels (
    product_id INT         NOT NULL,
    warehouse  VARCHAR(32) NOT NULL,
    qty        INT         NOT NULL,
    PRIMARY KEY (product_id, warehouse),
    FOREIGN KEY (product_id) REFERENCES products (id)
);

INSERT INTO products (sku, name, price) VALUES
    ('MUG-01', 'Enamel mug',     12.00),
    ('TEE-01', 'Cotton t-shirt', 25.00),
    ('CAP-01', 'Canvas cap',     18.50);

INSERT INTO stock_levels (product_id, warehouse, qty) VALUES
    (1, 'north', 40),
    (1, 'south', 15),
    (2, 'north',  8),
    (3, 'south', 22);
