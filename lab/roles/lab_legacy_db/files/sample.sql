-- Sample "buffer" database of the lab application: a few related tables with
-- the kinds of columns a migration must carry exactly. The only parameter is
-- the number of customers.
CREATE SCHEMA buffer;

CREATE TABLE buffer.customers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    email       text UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE buffer.orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES buffer.customers (id),
    amount      numeric(12, 2) NOT NULL,
    placed_at   timestamptz NOT NULL,
    payload     jsonb
);
CREATE INDEX orders_customer_idx ON buffer.orders (customer_id);

CREATE TABLE buffer.events (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL,
    body        bytea,
    received_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO buffer.customers (name, email)
SELECT 'customer ' || g, 'customer' || g || '@example.test'
FROM generate_series(1, %s) AS g;

INSERT INTO buffer.orders (customer_id, amount, placed_at, payload)
SELECT c.id, round((random() * 1000)::numeric, 2),
       now() - (g || ' minutes')::interval,
       jsonb_build_object('lines', g %% 7 + 1, 'note', 'sample')
FROM buffer.customers AS c CROSS JOIN generate_series(1, 4) AS g;

INSERT INTO buffer.events (kind, body)
SELECT 'order.placed', convert_to('order ' || id, 'UTF8') FROM buffer.orders;
