"""What a run shows: SCORES.*, report.html, runs/<attempt>/, the live progress and the closing lines."""
