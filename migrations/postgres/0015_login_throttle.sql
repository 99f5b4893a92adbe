-- coachd schema, version 15: the dashboard's login throttle, shared by every replica on
-- the database (and kept over a restart).
--
-- Failed logins counted per key: `pair:NAME|ADDRESS` and `ip:ADDRESS` (an IPv6 address
-- as its /64), and `global`, all failures together in the current minute (`first_ms`
-- is that minute's start). A row idle for longer than the longest wait is pruned.
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY NOT NULL,
    failures BIGINT NOT NULL,
    first_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL
);
CREATE INDEX login_failures_last ON login_failures (last_ms);

-- (name, address) pairs that logged in, by their `pair:` key: they pass the global
-- ceiling. Bounded in number by the code that adds them.
CREATE TABLE login_known (
    pair TEXT PRIMARY KEY NOT NULL,
    at_ms BIGINT NOT NULL
);
