"""What the cells need: interventions, knockouts, self-repair, steering, degradation."""
