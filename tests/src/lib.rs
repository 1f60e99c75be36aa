//! End-to-end tests live in `tests/`; shared helpers are in `tests/common`.
