-- Edge nodes' Sparkplug B birth certificates (metric definitions and aliases), kept so that data
-- an external broker queued while the platform was away can be read after a restart.
CREATE TABLE sparkplug_sessions (
    group_code  TEXT NOT NULL,
    edge_node   TEXT NOT NULL,
    births      TEXT NOT NULL,
    PRIMARY KEY (group_code, edge_node)
);
