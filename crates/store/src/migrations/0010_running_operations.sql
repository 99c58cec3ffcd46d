-- The operations under way, by machine: a count rule looks up the one running on a machine for
-- every counter rise, and the simulator and the planner read them all.
CREATE INDEX operations_running ON operations(machine_id, id) WHERE status = 'running';
