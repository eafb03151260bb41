"""The ground floor: the domain model (runs, steps, attempts, events), workflow
specs, states, failures, domain errors, the clock, CEL expressions and
templates, JSON values. It imports nothing else of Podium, and everything
else may import it."""
