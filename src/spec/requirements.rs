//! Requirement IDs of `docs/card-spec.md` (filled in by the requirement-matrix work).
