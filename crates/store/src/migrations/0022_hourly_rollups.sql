-- One row per series and UTC hour, written with the minute roll-ups. Kept for years, so long
-- ranges stay readable after the minute roll-ups are pruned (a minute row per series costs more
-- than the raw reading it sums at one reading a minute).
CREATE TABLE rollups_1h (
    series_id   INTEGER NOT NULL,
    hour_ms     INTEGER NOT NULL,
    min         REAL NOT NULL,
    max         REAL NOT NULL,
    sum         REAL NOT NULL,
    count       INTEGER NOT NULL,
    last        REAL NOT NULL,
    last_ts_ms  INTEGER NOT NULL,
    PRIMARY KEY (series_id, hour_ms)
) WITHOUT ROWID;

-- The hours of the minutes already stored; `last` is that of the hour's latest reading.
INSERT INTO rollups_1h (series_id, hour_ms, min, max, sum, count, last, last_ts_ms)
SELECT series_id, hour_ms, min(min), max(max), sum(sum), sum(count),
       max(CASE WHEN latest = 1 THEN last END), max(last_ts_ms)
FROM (
    SELECT series_id, hour_ms, min, max, sum, count, last, last_ts_ms,
           row_number() OVER (PARTITION BY series_id, hour_ms ORDER BY last_ts_ms DESC) AS latest
    FROM (SELECT *, minute_ms - (((minute_ms % 3600000) + 3600000) % 3600000) AS hour_ms FROM rollups_1m)
)
GROUP BY series_id, hour_ms;
