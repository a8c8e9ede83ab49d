//! dunning-worker
