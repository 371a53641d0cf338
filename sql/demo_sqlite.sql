-- Demo schema and data for the example tasks (SQLite). Idempotent: runs whenever the data
-- source is opened. Time columns are TIMESTAMP (ISO-8601 UTC text); cronstack reads and writes
-- them as milliseconds since the epoch, as in the seed.
CREATE TABLE IF NOT EXISTS user_activities (
  id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, action TEXT NOT NULL, created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
  id INTEGER PRIMARY KEY, customer_id INTEGER, status TEXT NOT NULL, total REAL NOT NULL,
  created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS daily_reports (
  id INTEGER PRIMARY KEY, report_date DATE NOT NULL, total_activities INTEGER NOT NULL,
  total_orders INTEGER NOT NULL, total_revenue REAL NOT NULL, generated_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS user_sessions (
  id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, token TEXT, created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS archived_sessions (
  id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, token TEXT, created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL, view_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS subscriptions (
  id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, status TEXT NOT NULL,
  stripe_customer_id TEXT, expires_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS error_logs (
  id INTEGER PRIMARY KEY, task_name TEXT, error_message TEXT, occurred_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS task_metrics (
  id INTEGER PRIMARY KEY, task_name TEXT, execution_time INTEGER, records_processed INTEGER,
  success BOOLEAN, executed_at TIMESTAMP
);

-- Demo rows, inserted once (the marker row keeps archived sessions from coming back).
CREATE TABLE IF NOT EXISTS demo_seeded (id INTEGER PRIMARY KEY);
INSERT INTO user_activities (user_id, action, created_at)
  SELECT 1, 'login', strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE NOT EXISTS (SELECT 1 FROM demo_seeded)
  UNION ALL SELECT 2, 'purchase', strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE NOT EXISTS (SELECT 1 FROM demo_seeded)
  UNION ALL SELECT 3, 'login', strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-2 days') WHERE NOT EXISTS (SELECT 1 FROM demo_seeded);
INSERT INTO orders (customer_id, status, total, created_at)
  SELECT 1, 'completed', 49.90, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE NOT EXISTS (SELECT 1 FROM demo_seeded)
  UNION ALL SELECT 2, 'completed', 120.00, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE NOT EXISTS (SELECT 1 FROM demo_seeded)
  UNION ALL SELECT 3, 'pending', 15.00, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE NOT EXISTS (SELECT 1 FROM demo_seeded);
INSERT INTO user_sessions (user_id, token, created_at)
  SELECT 1, 'old-a', strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-45 days') WHERE NOT EXISTS (SELECT 1 FROM demo_seeded)
  UNION ALL SELECT 2, 'old-b', strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-31 days') WHERE NOT EXISTS (SELECT 1 FROM demo_seeded)
  UNION ALL SELECT 3, 'fresh', strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 days') WHERE NOT EXISTS (SELECT 1 FROM demo_seeded);
INSERT INTO products (name, price, view_count)
  SELECT 'Widget', 9.99, 1500 WHERE NOT EXISTS (SELECT 1 FROM demo_seeded)
  UNION ALL SELECT 'Gadget', 24.50, 320 WHERE NOT EXISTS (SELECT 1 FROM demo_seeded)
  UNION ALL SELECT 'Gizmo', 4.25, 7800 WHERE NOT EXISTS (SELECT 1 FROM demo_seeded);
INSERT INTO subscriptions (user_id, status, stripe_customer_id, expires_at)
  SELECT 1, 'active', 'cus_demo1', strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+12 hours') WHERE NOT EXISTS (SELECT 1 FROM demo_seeded)
  UNION ALL SELECT 2, 'active', 'cus_demo2', strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+20 days') WHERE NOT EXISTS (SELECT 1 FROM demo_seeded);
INSERT OR IGNORE INTO demo_seeded (id) VALUES (1);
