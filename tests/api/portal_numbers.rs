//! (filled in by the portal's work in progress)
