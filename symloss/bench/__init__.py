"""MuJoCo preference benchmark (filled in below)."""
