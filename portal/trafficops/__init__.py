"""Traffic Ops' wire conventions: alerts, JSON bodies, the session + CSRF rule, permissions,
login/logout, lockout answers and OpenAPI helpers (docs/api.md). Imports no app of this project."""
