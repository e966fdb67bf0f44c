"""§4.2 and App. A: Table 1 on the swiss roll (the study, its report, its data, its exact references)."""
