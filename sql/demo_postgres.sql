-- Demo schema and data for the example tasks (PostgreSQL). Idempotent: runs whenever the data
-- source is opened. cronstack reads and writes timestamptz as milliseconds since the epoch.
CREATE TABLE IF NOT EXISTS user_activities (
  id bigserial PRIMARY KEY, user_id bigint NOT NULL, action text NOT NULL, created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
  id bigserial PRIMARY KEY, customer_id bigint, status text NOT NULL, total numeric(12,2) NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS daily_reports (
  id bigserial PRIMARY KEY, report_date date NOT NULL, total_activities integer NOT NULL,
  total_orders integer NOT NULL, total_revenue numeric(12,2) NOT NULL, generated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS user_sessions (
  id bigserial PRIMARY KEY, user_id bigint NOT NULL, token text, created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS archived_sessions (
  id bigint PRIMARY KEY, user_id bigint NOT NULL, token text, created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
  id bigserial PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL, view_count integer NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS subscriptions (
  id bigserial PRIMARY KEY, user_id bigint NOT NULL, status text NOT NULL,
  stripe_customer_id text, expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS error_logs (
  id bigserial PRIMARY KEY, task_name text, error_message text, occurred_at timestamptz
);
CREATE TABLE IF NOT EXISTS task_metrics (
  id bigserial PRIMARY KEY, task_name text, execution_time integer, records_processed integer,
  success boolean, executed_at timestamptz
);

CREATE TABLE IF NOT EXISTS demo_seeded (id integer PRIMARY KEY);
INSERT INTO user_activities (user_id, action, created_at)
  SELECT v.* FROM (VALUES (1, 'login', now()), (2, 'purchase', now()), (3, 'login', now() - interval '2 days')) AS v
  WHERE NOT EXISTS (SELECT 1 FROM demo_seeded);
INSERT INTO orders (customer_id, status, total, created_at)
  SELECT v.* FROM (VALUES (1, 'completed', 49.90, now()), (2, 'completed', 120.00, now()), (3, 'pending', 15.00, now())) AS v
  WHERE NOT EXISTS (SELECT 1 FROM demo_seeded);
INSERT INTO user_sessions (user_id, token, created_at)
  SELECT v.* FROM (VALUES (1, 'old-a', now() - interval '45 days'), (2, 'old-b', now() - interval '31 days'), (3, 'fresh', now() - interval '1 day')) AS v
  WHERE NOT EXISTS (SELECT 1 FROM demo_seeded);
INSERT INTO products (name, price, view_count)
  SELECT v.* FROM (VALUES ('Widget', 9.99, 1500), ('Gadget', 24.50, 320), ('Gizmo', 4.25, 7800)) AS v
  WHERE NOT EXISTS (SELECT 1 FROM demo_seeded);
INSERT INTO subscriptions (user_id, status, stripe_customer_id, expires_at)
  SELECT v.* FROM (VALUES (1, 'active', 'cus_demo1', now() + interval '12 hours'), (2, 'active', 'cus_demo2', now() + interval '20 days')) AS v
  WHERE NOT EXISTS (SELECT 1 FROM demo_seeded);
INSERT INTO demo_seeded (id) VALUES (1) ON CONFLICT DO NOTHING;
