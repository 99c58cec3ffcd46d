//! The planning engine: a tabu-search solver for job-shop and flexible job-shop problems with
//! the production extensions (release dates, due dates, setups, unavailability, fixed work).
