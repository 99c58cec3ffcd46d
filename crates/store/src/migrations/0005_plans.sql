-- Plans: a solver's schedule of the open operations, and which plan the shop floor follows.

CREATE TABLE plans (
    id                  INTEGER PRIMARY KEY,
    created_ms          INTEGER NOT NULL,
    status              TEXT NOT NULL,
    objective           TEXT NOT NULL,
    makespan_ms         INTEGER NOT NULL,
    weighted_tardiness  INTEGER NOT NULL,
    late_orders         INTEGER NOT NULL,
    setup_seconds       INTEGER NOT NULL,
    solve_ms            INTEGER NOT NULL,
    published_ms        INTEGER,
    -- The solver's problem in the scheduler's JSON format, to reproduce or compare the plan.
    problem             TEXT NOT NULL
);
CREATE INDEX plans_status ON plans(status);

CREATE TABLE plan_operations (
    plan_id         INTEGER NOT NULL REFERENCES plans(id) ON DELETE CASCADE,
    operation_id    INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
    -- Large lots are split into consecutive parts that each fit in a shift: part 0, 1, ...
    part            INTEGER NOT NULL,
    quantity        INTEGER NOT NULL,
    machine_id      INTEGER NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    setup_start_ms  INTEGER NOT NULL,
    start_ms        INTEGER NOT NULL,
    end_ms          INTEGER NOT NULL,
    PRIMARY KEY (plan_id, operation_id, part)
);
CREATE INDEX plan_operations_machine ON plan_operations(plan_id, machine_id, start_ms);
